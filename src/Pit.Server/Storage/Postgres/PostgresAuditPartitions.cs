using System.Globalization;
using System.Runtime.CompilerServices;
using Npgsql;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The audit log as a table partitioned by UTC day on <c>at</c>: <c>audit_log_pYYYYMMDD</c> holds [day, day + 1),
/// and <c>audit_log_default</c> catches anything no day partition covers (it should stay empty). Retention drops
/// whole day partitions, which costs no row deletes, no vacuum and no index bloat.
/// </summary>
internal static class PostgresAuditPartitions
{
    /// <summary>Microseconds in a day.</summary>
    public const long DayMicros = 86_400_000_000;

    /// <summary>
    /// Schema step 4. The old table's rows are kept (with their ids): a partition is made for every day they cover,
    /// so the default partition starts empty. PostgreSQL before 17 has no identity columns on partitioned tables,
    /// hence the explicit sequence. Also the index the submission retention deletes by.
    /// </summary>
    public static readonly string PartitioningMigration = $"""
        ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
        ALTER INDEX audit_log_organisation RENAME TO audit_log_unpartitioned_organisation;
        CREATE SEQUENCE audit_log_id AS bigint;
        CREATE TABLE audit_log (
            id bigint NOT NULL DEFAULT nextval('audit_log_id'),
            at bigint NOT NULL,
            action text NOT NULL,
            client_id text NOT NULL,
            organisation text NOT NULL,
            orgnr_child text,
            submission_id uuid,
            patient_ids text,
            status integer NOT NULL,
            outcome text NOT NULL,
            PRIMARY KEY (at, id)) PARTITION BY RANGE (at);
        ALTER SEQUENCE audit_log_id OWNED BY audit_log.id;
        CREATE INDEX audit_log_organisation_at ON audit_log (organisation, at);
        CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
        DO $$
        DECLARE day bigint;
        BEGIN
            FOR day IN SELECT DISTINCT floor(at::numeric / {DayMicros})::bigint FROM audit_log_unpartitioned LOOP
                EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%s) TO (%s)',
                    'audit_log_p' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
                    day * {DayMicros}, (day + 1) * {DayMicros});
            END LOOP;
        END $$;
        INSERT INTO audit_log (id, at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome)
            SELECT id, at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome
            FROM audit_log_unpartitioned;
        SELECT setval('audit_log_id', coalesce((SELECT max(id) FROM audit_log), 0) + 1, false);
        DROP TABLE audit_log_unpartitioned;
        {StoredRows.ProcessedSubmissionsIndex}
        """;

    /// <summary>The UTC day (days since the epoch) that <paramref name="at"/> (microseconds) falls on.</summary>
    public static long DayOf(long at) => at >= 0 ? at / DayMicros : -((-at + DayMicros - 1) / DayMicros);

    /// <summary>The partition's name for <paramref name="day"/>.</summary>
    public static string NameOf(long day) =>
        "audit_log_p" + DateTimeOffset.UnixEpoch.AddDays(day).ToString("yyyyMMdd", CultureInfo.InvariantCulture);

    /// <summary>The day a partition named by <see cref="NameOf"/> holds; null for any other name.</summary>
    public static long? DayOfName(string name) =>
        name.StartsWith("audit_log_p", StringComparison.Ordinal)
        && DateTime.TryParseExact(name["audit_log_p".Length..], "yyyyMMdd", CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var date)
            ? (long)(date - DateTime.UnixEpoch).TotalDays
            : null;
}

// Export and retention on PostgreSQL.
internal sealed partial class PostgresPitStore
{
    // 1 once this instance has said that partition maintenance is left to the owner role (said once per process).
    private int _partitionsLeftToOwnerLogged;

    public async IAsyncEnumerable<AuditEntry> ExportAuditAsync(long from, long to, string? organisation, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(StoredRows.AuditExportQuery("$1", "$2", organisation is null ? null : "$3"));
        command.CommandTimeout = 0;
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = from });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = to });
        if (organisation is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = organisation });
        }

        await foreach (var entry in StoredRows.StreamAuditAsync(command, cancellationToken))
        {
            yield return entry;
        }
    }

    /// <summary>
    /// Creates the missing day partitions from <paramref name="from"/>'s day to <paramref name="to"/>'s. A day's rows
    /// that the default partition caught meanwhile (the loop was down) move into the new partition in the same
    /// transaction, so attaching it never fails on them.
    /// </summary>
    public async Task PrepareAuditAsync(long from, long to, CancellationToken cancellationToken)
    {
        if (!await InPartitionMaintenanceAsync((connection, tx) => MayManagePartitionsAsync(connection, tx, cancellationToken), cancellationToken))
        {
            if (Interlocked.Exchange(ref _partitionsLeftToOwnerLogged, 1) == 0)
            {
                LogPartitionsLeftToOwner(_logger);
            }

            return;
        }

        for (var day = PostgresAuditPartitions.DayOf(from); day <= PostgresAuditPartitions.DayOf(to); day++)
        {
            var name = PostgresAuditPartitions.NameOf(day);
            var (lo, hi) = (day * PostgresAuditPartitions.DayMicros, (day + 1) * PostgresAuditPartitions.DayMicros);
            await InPartitionMaintenanceAsync(async (connection, tx) =>
            {
                await using (var exists = new NpgsqlCommand("SELECT to_regclass($1) IS NOT NULL;", connection, tx))
                {
                    exists.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
                    if ((bool)(await exists.ExecuteScalarAsync(cancellationToken))!)
                    {
                        return 0;
                    }
                }

                await using var create = new NpgsqlCommand($"""
                    CREATE TABLE {name} (LIKE audit_log INCLUDING DEFAULTS);
                    WITH moved AS (DELETE FROM audit_log_default WHERE at >= {lo} AND at < {hi} RETURNING *)
                    INSERT INTO {name} SELECT * FROM moved;
                    ALTER TABLE audit_log ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi});
                    """, connection, tx);
                await create.ExecuteNonQueryAsync(cancellationToken);
                return 0;
            }, cancellationToken);
        }
    }

    /// <summary>Drops every day partition wholly before <paramref name="before"/>, then deletes old default-partition rows.</summary>
    public Task<int> RemoveAuditBeforeAsync(long before, int maxRows, CancellationToken cancellationToken) =>
        InPartitionMaintenanceAsync(async (connection, tx) =>
        {
            var expired = new List<string>();
            var mayDrop = await MayManagePartitionsAsync(connection, tx, cancellationToken);
            await using (var list = new NpgsqlCommand("""
                SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'audit_log'::regclass;
                """, connection, tx))
            await using (var reader = await list.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    var name = reader.GetString(0);
                    if (mayDrop && PostgresAuditPartitions.DayOfName(name) is { } day && (day + 1) * PostgresAuditPartitions.DayMicros <= before)
                    {
                        expired.Add(name);
                    }
                }
            }

            foreach (var name in expired)
            {
                await using var drop = new NpgsqlCommand($"DROP TABLE {name};", connection, tx);
                await drop.ExecuteNonQueryAsync(cancellationToken);
            }

            await using var delete = new NpgsqlCommand("""
                DELETE FROM audit_log_default WHERE ctid = ANY (ARRAY(
                    SELECT ctid FROM audit_log_default WHERE at < $1 LIMIT $2));
                """, connection, tx);
            delete.Parameters.Add(new NpgsqlParameter<long> { TypedValue = before });
            delete.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxRows });
            return await delete.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);

    public async Task<int> RemoveProcessedSubmissionsBeforeAsync(long before, int maxRows, CancellationToken cancellationToken)
    {
        await using var delete = _dataSource.CreateCommand(StoredRows.ProcessedSubmissionsDelete("$1", "$2"));
        delete.Parameters.Add(new NpgsqlParameter<long> { TypedValue = before });
        delete.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxRows });
        return await delete.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Whether this connection's role may create, attach and drop the audit log's day partitions: CREATE on its schema
    /// and the rights of <c>audit_log</c>'s owner. A least-privilege runtime role (deploy/postgres-roles.sql) may not;
    /// then <c>migrate</c>, run daily as the owner, does that part, and the runtime only deletes old rows of the
    /// default partition (DML). Asked on every run, so a change of grants needs no restart.
    /// </summary>
    private static async Task<bool> MayManagePartitionsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT has_schema_privilege(c.relnamespace, 'CREATE') AND pg_has_role(c.relowner, 'USAGE')
            FROM pg_class c WHERE c.oid = 'audit_log'::regclass;
            """, connection, tx);
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    [LoggerMessage(EventId = 43, Level = LogLevel.Information, Message =
        "This instance's database role may not create tables, so the audit log's day partitions are left to `migrate` run as the owner role (daily); entries past the prepared days go to audit_log_default")]
    private static partial void LogPartitionsLeftToOwner(ILogger logger);

    /// <summary>
    /// One transaction under the partition lock, so instances take turns. A short lock timeout: an attach or drop
    /// waiting behind a long export would otherwise queue every audit write behind itself; it is simply tried again
    /// on the next run.
    /// </summary>
    private async Task<T> InPartitionMaintenanceAsync<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using (var setup = new NpgsqlCommand($"""
            SET LOCAL lock_timeout = '2s';
            SELECT pg_advisory_xact_lock({PostgresSchema.AuditPartitionLockKey});
            """, connection, tx))
        {
            await setup.ExecuteNonQueryAsync(cancellationToken);
        }

        var result = await work(connection, tx);
        await tx.CommitAsync(cancellationToken);
        return result;
    }
}
