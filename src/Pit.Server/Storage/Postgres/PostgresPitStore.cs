using System.Data;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Pit.Server.Storage.Postgres;

/// <summary>Settings of the PostgreSQL engine beyond <see cref="StorageOptions"/> (section <c>Pit:Storage</c>).</summary>
internal sealed class PostgresStoreOptions
{
    /// <summary>Attempts before a submission whose apply keeps throwing ends as Failed (default 5).</summary>
    public int MaxApplyAttempts { get; set; } = 5;

    /// <summary>Wait before the first retry of such a submission; doubles with each attempt (default 1 s).</summary>
    public TimeSpan ApplyRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of the wait between retries (default 1 min).</summary>
    public TimeSpan ApplyRetryMaxDelay { get; set; } = TimeSpan.FromMinutes(1);
}

/// <summary>
/// The PostgreSQL engine, for several server instances over one database.
/// <para>
/// Queue: submissions are rows; every instance's worker calls <see cref="ApplyPendingAsync"/>, which claims queued
/// rows in acceptance order with <c>FOR UPDATE SKIP LOCKED</c> and marks each done, unchanged, superseded or failed in
/// the same transaction that writes the Patient.
/// </para>
/// <para>
/// Change feed: every apply transaction first takes one transaction-scoped advisory lock (<see
/// cref="PostgresSchema.FeedLockKey"/>) and holds it to commit; only then does it claim rows and read the clock
/// (<c>max(last_updated)</c>). Apply transactions therefore commit one after the other, and each one's
/// <c>lastUpdated</c> values are above everything committed before it, so <c>lastUpdated</c> order is commit
/// (visibility) order across all instances. The same lock makes identifier matching race-free: two instances can
/// never both create a Patient for one identifier.
/// </para>
/// </summary>
internal sealed class PostgresPitStore : IPitStore, IAsyncDisposable
{
    /// <summary>The insert of one accepted submission (also used by tests that simulate a slow group commit).</summary>
    internal const string InsertSubmissionSql = """
        INSERT INTO submissions (id, tenant, client_id, orgnr_child, content, content_hash, key_systems, key_values, accepted_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly bool _ownsDataSource;
    private readonly TimeProvider _time;
    private readonly PostgresStoreOptions _options;
    private readonly ILogger _logger;

    public PostgresPitStore(NpgsqlDataSource dataSource, TimeProvider time, PostgresStoreOptions? options = null, ILogger? logger = null, bool ownsDataSource = false)
    {
        _options = options ?? new PostgresStoreOptions();
        if (_options.MaxApplyAttempts < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Pit:Storage:MaxApplyAttempts must be at least 1.");
        }

        _dataSource = dataSource;
        _ownsDataSource = ownsDataSource;
        _time = time;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Builds the engine from the application's services (the one line of wiring in StorageSetup).</summary>
    public static PostgresPitStore Create(IServiceProvider services, StorageOptions storage)
    {
        var configuration = services.GetRequiredService<IConfiguration>();
        var options = configuration.GetSection("Pit:Storage").Get<PostgresStoreOptions>() ?? new PostgresStoreOptions();
        var dataSource = new NpgsqlDataSourceBuilder(storage.ConnectionString).Build();
        return new PostgresPitStore(
            dataSource, services.GetRequiredService<TimeProvider>(), options,
            services.GetRequiredService<ILogger<PostgresPitStore>>(), ownsDataSource: true);
    }

    public Task InitializeAsync(CancellationToken cancellationToken) =>
        PostgresSchema.MigrateAsync(_dataSource, _logger, cancellationToken);

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using var insert = new NpgsqlBatch(connection, tx);
        foreach (var s in batch)
        {
            insert.BatchCommands.Add(InsertSubmissionCommand(s));
        }

        // One round trip; the batch's statements run in list order, so identity values follow it.
        await insert.ExecuteNonQueryAsync(cancellationToken);
        await tx.CommitAsync(cancellationToken);
    }

    /// <summary>The insert of <paramref name="s"/> as a batch command.</summary>
    internal static NpgsqlBatchCommand InsertSubmissionCommand(NewSubmission s)
    {
        var command = new NpgsqlBatchCommand(InsertSubmissionSql);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = s.Id });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = s.Tenant });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = s.ClientId });
        command.Parameters.Add(Text(s.OrgnrChild));
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = s.Content });
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = s.ContentHash });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = s.Keys.Select(k => k.System).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = s.Keys.Select(k => k.Value).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.AcceptedAt });
        return command;
    }

    public async Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            SELECT tenant, seq, state, accepted_at, processed_at, patient_id, patient_version, reason
            FROM submissions WHERE id = $1;
            """);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return new SubmissionRecord(
            id, reader.GetString(0), reader.GetInt64(1), (SubmissionState)reader.GetInt16(2), reader.GetInt64(3),
            reader.IsDBNull(4) ? null : reader.GetInt64(4),
            reader.IsDBNull(5) ? null : reader.GetString(5),
            reader.IsDBNull(6) ? null : reader.GetInt32(6),
            reader.IsDBNull(7) ? null : reader.GetString(7));
    }

    public async Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);

        // The feed lock first, held to commit: everything below (claim, clock, matching) sees every earlier apply.
        await using (var feedLock = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgresSchema.FeedLockKey});", connection, tx))
        {
            await feedLock.ExecuteNonQueryAsync(cancellationToken);
        }

        var now = Now();
        var pending = new List<Claimed>();
        long clock;
        await using (var claim = new NpgsqlBatch(connection, tx))
        {
            var select = new NpgsqlBatchCommand("""
                SELECT seq, tenant, content, content_hash, key_systems, key_values, attempts FROM submissions
                WHERE state = 0 AND retry_at <= $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED;
                """);
            select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now });
            select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxCount });
            claim.BatchCommands.Add(select);
            claim.BatchCommands.Add(new NpgsqlBatchCommand("SELECT coalesce(max(last_updated), 0) FROM patients;"));
            await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var systems = reader.GetFieldValue<string[]>(4);
                var values = reader.GetFieldValue<string[]>(5);
                pending.Add(new Claimed(
                    reader.GetInt64(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2), reader.GetFieldValue<byte[]>(3),
                    systems.Zip(values, (s, v) => new PatientKey(s, v)).ToList(), reader.GetInt32(6)));
            }

            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            clock = reader.GetInt64(0);
        }

        if (pending.Count == 0)
        {
            await tx.CommitAsync(cancellationToken);
            return 0;
        }

        foreach (var s in pending)
        {
            now = Now();
            try
            {
                clock = await ApplyOneAsync(connection, tx, s, clock, now, cancellationToken);
            }
            catch (Exception ex) when (IsApplyFailure(ex, connection))
            {
                await using (var rollback = new NpgsqlCommand("ROLLBACK TO SAVEPOINT apply_one; RELEASE SAVEPOINT apply_one;", connection, tx))
                {
                    await rollback.ExecuteNonQueryAsync(cancellationToken);
                }

                await RecordFailedAttemptAsync(connection, tx, s, ex, now, cancellationToken);
            }
        }

        await tx.CommitAsync(cancellationToken);
        return pending.Count;
    }

    private static async Task<long> ApplyOneAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, Claimed s, long clock, long now, CancellationToken cancellationToken)
    {
        var keys = s.Keys.Distinct().ToArray();
        var systems = keys.Select(k => k.System).ToArray();
        var values = keys.Select(k => k.Value).ToArray();
        var matches = new List<ExistingPatient>(1);
        await using (var find = new NpgsqlBatch(connection, tx))
        {
            find.BatchCommands.Add(new NpgsqlBatchCommand("SAVEPOINT apply_one;"));
            var select = new NpgsqlBatchCommand("""
                SELECT DISTINCT p.id, p.version, p.content_hash, p.last_seq
                FROM unnest($2::text[], $3::text[]) AS k(system, value)
                JOIN patient_keys pk ON pk.tenant = $1 AND pk.system = k.system AND pk.value = k.value
                JOIN patients p ON p.id = pk.patient_id;
                """);
            select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = s.Tenant });
            select.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = systems });
            select.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = values });
            find.BatchCommands.Add(select);
            await using var reader = await find.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                matches.Add(new ExistingPatient(reader.GetString(0), reader.GetInt32(1), reader.GetFieldValue<byte[]>(2), reader.GetInt64(3)));
            }
        }

        var decision = PatientUpsert.Decide(s.Sequence, s.Hash, matches, PatientUpsert.NewPatientId);
        await using var write = new NpgsqlBatch(connection, tx);
        var result = clock;
        switch (decision.Action)
        {
            case UpsertAction.Write:
                var lastUpdated = Math.Max(now, clock + 1);
                var json = PatientJson.Compose(s.Content, decision.PatientId!, decision.Version, lastUpdated, s.Tenant);
                var upsert = new NpgsqlBatchCommand("""
                    INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                        content_hash = excluded.content_hash, last_seq = excluded.last_seq, json = excluded.json;
                    """);
                upsert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = decision.PatientId! });
                upsert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = s.Tenant });
                upsert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = decision.Version });
                upsert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = lastUpdated });
                upsert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = s.Hash });
                upsert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.Sequence });
                upsert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = json });
                write.BatchCommands.Add(upsert);
                var deleteKeys = new NpgsqlBatchCommand("DELETE FROM patient_keys WHERE patient_id = $1;");
                deleteKeys.Parameters.Add(new NpgsqlParameter<string> { TypedValue = decision.PatientId! });
                write.BatchCommands.Add(deleteKeys);
                var insertKeys = new NpgsqlBatchCommand("""
                    INSERT INTO patient_keys (tenant, system, value, patient_id)
                    SELECT $1, k.system, k.value, $4 FROM unnest($2::text[], $3::text[]) AS k(system, value);
                    """);
                insertKeys.Parameters.Add(new NpgsqlParameter<string> { TypedValue = s.Tenant });
                insertKeys.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = systems });
                insertKeys.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = values });
                insertKeys.Parameters.Add(new NpgsqlParameter<string> { TypedValue = decision.PatientId! });
                write.BatchCommands.Add(insertKeys);
                write.BatchCommands.Add(Mark(s.Sequence, SubmissionState.Applied, now, decision.PatientId, decision.Version, null));
                result = lastUpdated;
                break;
            case UpsertAction.Unchanged:
                var touch = new NpgsqlBatchCommand("UPDATE patients SET last_seq = greatest(last_seq, $1) WHERE id = $2;");
                touch.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.Sequence });
                touch.Parameters.Add(new NpgsqlParameter<string> { TypedValue = decision.PatientId! });
                write.BatchCommands.Add(touch);
                write.BatchCommands.Add(Mark(s.Sequence, SubmissionState.Unchanged, now, decision.PatientId, decision.Version, null));
                break;
            case UpsertAction.Superseded:
                write.BatchCommands.Add(Mark(s.Sequence, SubmissionState.Superseded, now, decision.PatientId, decision.Version, null));
                break;
            default:
                write.BatchCommands.Add(Mark(s.Sequence, SubmissionState.Failed, now, null, null, decision.Reason));
                break;
        }

        write.BatchCommands.Add(new NpgsqlBatchCommand("RELEASE SAVEPOINT apply_one;"));
        await write.ExecuteNonQueryAsync(cancellationToken);
        return result;
    }

    /// <summary>
    /// Whether <paramref name="ex"/> from applying one submission counts as an attempt. Transient database errors
    /// (broken connection, serialization failure, shutdown) do not: they abort the whole batch, which is retried.
    /// </summary>
    private static bool IsApplyFailure(Exception ex, NpgsqlConnection connection) =>
        ex is not OperationCanceledException
        && ex is not NpgsqlException { IsTransient: true }
        && connection.FullState == ConnectionState.Open;

    private async Task RecordFailedAttemptAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, Claimed s, Exception ex, long now, CancellationToken cancellationToken)
    {
        var attempts = s.Attempts + 1;
        // Type names only: exception messages may quote health data.
        var error = ex is PostgresException pg ? $"{ex.GetType().Name} {pg.SqlState}" : ex.GetType().Name;
        NpgsqlBatchCommand command;
        if (attempts >= _options.MaxApplyAttempts)
        {
            _logger.LogError(ex, "Submission {Sequence} failed for good after {Attempts} attempts.", s.Sequence, attempts);
            command = Mark(s.Sequence, SubmissionState.Failed, now, null, null, $"Processing failed after {attempts} attempts: {error}.");
        }
        else
        {
            _logger.LogWarning(ex, "Submission {Sequence} could not be applied (attempt {Attempts}); will retry.", s.Sequence, attempts);
            var delay = Math.Min(
                _options.ApplyRetryDelay.Ticks * (1L << Math.Min(attempts - 1, 20)),
                _options.ApplyRetryMaxDelay.Ticks) / TimeSpan.TicksPerMicrosecond;
            command = new NpgsqlBatchCommand("UPDATE submissions SET retry_at = $1, last_error = $2 WHERE seq = $3;");
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now + delay });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = error });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.Sequence });
        }

        var count = new NpgsqlBatchCommand("UPDATE submissions SET attempts = $1 WHERE seq = $2;");
        count.Parameters.Add(new NpgsqlParameter<int> { TypedValue = attempts });
        count.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.Sequence });
        await using var batch = new NpgsqlBatch(connection, tx) { BatchCommands = { command, count } };
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlBatchCommand Mark(long seq, SubmissionState state, long now, string? patientId, int? version, string? reason)
    {
        // The content is dropped once processed (kept when failed, for diagnosis): less health data lies about.
        var command = new NpgsqlBatchCommand("""
            UPDATE submissions SET state = $1, processed_at = $2, patient_id = $3, patient_version = $4, reason = $5,
                content = CASE WHEN $1 = 4 THEN content ELSE NULL END
            WHERE seq = $6;
            """);
        command.Parameters.Add(new NpgsqlParameter<short> { TypedValue = (short)state });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now });
        command.Parameters.Add(Text(patientId));
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)version ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        command.Parameters.Add(Text(reason));
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = seq });
        return command;
    }

    public async Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT id, tenant, version, last_updated, json FROM patients WHERE id = $1;");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? ReadPatient(reader) : null;
    }

    public async Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand();
        BuildSearch(command, query);
        var result = new List<PatientRecord>(query.Limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(ReadPatient(reader));
        }

        return result;
    }

    /// <summary>
    /// The keyset query: a row comparison on (last_updated, id) and ORDER BY the same columns, so it is a range scan
    /// on patients_feed, or on patients_tenant_feed when the tenant is fixed.
    /// </summary>
    internal static void BuildSearch(NpgsqlCommand command, PatientPageQuery query)
    {
        var where = new List<string>(4);
        if (query.Tenant is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = query.Tenant });
            where.Add($"tenant = ${command.Parameters.Count}");
        }

        if (query.From is { } from)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = from });
            where.Add($"last_updated >= ${command.Parameters.Count}");
        }

        if (query.To is { } to)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = to });
            where.Add($"last_updated < ${command.Parameters.Count}");
        }

        if (query.After is { } after)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after.LastUpdated });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = after.Id });
            var n = command.Parameters.Count;
            where.Add(query.Descending ? $"(last_updated, id) < (${n - 1}, ${n})" : $"(last_updated, id) > (${n - 1}, ${n})");
        }

        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = query.Limit });
        var direction = query.Descending ? "DESC" : "ASC";
        command.CommandText = string.Concat(
            "SELECT id, tenant, version, last_updated, json FROM patients",
            where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "",
            $" ORDER BY last_updated {direction}, id {direction} LIMIT ${command.Parameters.Count};");
    }

    public async Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using (var insert = new NpgsqlCommand("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;", connection))
        {
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = create() });
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        // A separate statement (new snapshot): it sees the winner's row even when the insert lost a race to it.
        await using var select = new NpgsqlCommand("SELECT value FROM secrets WHERE name = $1;", connection);
        select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        return (byte[])(await select.ExecuteScalarAsync(cancellationToken))!;
    }

    public async Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await using var command = _dataSource.CreateCommand("""
            INSERT INTO audit_log (at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome)
            SELECT at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome
            FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::text[], $8::integer[], $9::text[])
                WITH ORDINALITY AS e(at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome, n)
            ORDER BY n;
            """);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = entries.Select(e => e.At).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = entries.Select(e => e.Action).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = entries.Select(e => e.ClientId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = entries.Select(e => e.Organisation).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = entries.Select(e => e.OrgnrChild).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<Guid?[]> { TypedValue = entries.Select(e => e.SubmissionId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = entries.Select(e => e.PatientIds).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = entries.Select(e => e.Status).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = entries.Select(e => e.Outcome).ToArray() });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(string.Concat(
            "SELECT at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome FROM audit_log",
            organisation is null ? "" : " WHERE organisation = $2",
            " ORDER BY id DESC LIMIT $1;"));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        if (organisation is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = organisation });
        }

        var result = new List<AuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new AuditEntry(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetGuid(5),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.GetInt32(7), reader.GetString(8)));
        }

        return result;
    }

    public async Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        // A real round trip on a pooled connection: a pooled connection to a stopped server fails here, not on open.
        await using var command = _dataSource.CreateCommand("SELECT count(*) FROM schema_migrations;");
        await command.ExecuteScalarAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync();
        }
    }

    private long Now() => FeedTime.FromDateTimeOffset(_time.GetUtcNow());

    private static PatientRecord ReadPatient(NpgsqlDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3), reader.GetFieldValue<byte[]>(4));

    private static NpgsqlParameter Text(string? value) =>
        new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private sealed record Claimed(long Sequence, string Tenant, byte[] Content, byte[] Hash, IReadOnlyList<PatientKey> Keys, int Attempts);
}
