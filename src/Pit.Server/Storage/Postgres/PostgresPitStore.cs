using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using Pit.Server.Upsert;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The PostgreSQL engine, for several server instances over one database.
/// <para>
/// Queue: submissions are rows, inserted by a group commit (one transaction, one round trip per batch). Every
/// instance's worker calls <see cref="ApplyPendingAsync"/>, which claims queued rows in acceptance order under
/// per-tenant locks (PostgresApply.cs) and marks each applied, unchanged, superseded or failed in the same transaction
/// that writes the Patient, unstamped; <see cref="PostgresSequencer"/> stamps the versions and so makes them visible. A submission whose apply throws is retried after a growing delay and ends as Failed after
/// <see cref="PostgresStoreOptions.MaxApplyAttempts"/>; transient database errors are not counted.
/// </para>
/// </summary>
internal sealed partial class PostgresPitStore
    : IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IAuditExportStore, IRetentionStore, IStoreHealth, IAsyncDisposable
{
    /// <summary>The insert of one accepted submission (also used by tests that simulate a slow group commit).</summary>
    internal const string InsertSubmissionSql = """
        INSERT INTO submissions (id, tenant, client_id, orgnr_child, content, content_hash, key_systems, key_values, accepted_at, client_name)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource _readDataSource;
    private readonly bool _ownsDataSource;
    private readonly TimeProvider _time;
    private readonly PostgresStoreOptions _options;
    private readonly ILogger _logger;

    /// <param name="readDataSource">
    /// Where GET pages and reads by id go (a standby, <see cref="PostgresReadSource"/>); default: <paramref name="dataSource"/>.
    /// Not owned: its owner disposes it.
    /// </param>
    public PostgresPitStore(
        NpgsqlDataSource dataSource, TimeProvider time, PostgresStoreOptions? options = null, ILogger? logger = null, bool ownsDataSource = false,
        NpgsqlDataSource? readDataSource = null)
    {
        _options = options ?? new PostgresStoreOptions();
        if (PostgresStoreOptionsValidator.Problems(_options).FirstOrDefault() is { } problem)
        {
            throw new ArgumentOutOfRangeException(nameof(options), problem);
        }

        _dataSource = dataSource;
        _readDataSource = readDataSource ?? dataSource;
        _ownsDataSource = ownsDataSource;
        _time = time;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>
    /// A data source for <paramref name="connectionString"/> with this engine's defaults where the string leaves them
    /// unset: automatic statement preparation (the engine's statements are few and repeated), no session reset when a
    /// connection goes back to the pool, and an application name.
    /// </summary>
    public static NpgsqlDataSource CreateDataSource(string connectionString, string applicationName = "pit-server")
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
        {
            settings.MaxAutoPrepare = 64;
            settings.AutoPrepareMinUsages = 2;
        }

        // Npgsql's reset is eight statements (RESET ALL, UNLISTEN *, pg_advisory_unlock_all(), ...) run by the server on
        // the next use of every pooled connection: measured, it was about 40 % of PostgreSQL's CPU per GET. The engine
        // leaves no session state behind: settings are SET LOCAL, locks are transaction-scoped except the migration
        // lock (released in a finally), and the LISTEN connection unlistens before it is returned.
        if (!connectionString.Contains("No Reset On Close", StringComparison.OrdinalIgnoreCase))
        {
            settings.NoResetOnClose = true;
        }

        settings.ApplicationName ??= applicationName;
        return builder.Build();
    }

    public Task MigrateAsync(CancellationToken cancellationToken) =>
        PostgresSchema.MigrateAsync(_dataSource, _logger, cancellationToken);

    public string Location
    {
        get
        {
            var settings = new NpgsqlConnectionStringBuilder(_dataSource.ConnectionString);
            return $"PostgreSQL database {settings.Database} on {settings.Host}:{settings.Port}";
        }
    }

    public async Task<SchemaVersion> GetSchemaVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        return new SchemaVersion(await PostgresSchema.CurrentVersionAsync(connection, cancellationToken), PostgresSchema.LatestVersion);
    }

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        try
        {
            await AddSubmissionsOnceAsync(batch, cancellationToken);
        }
        catch (NpgsqlException ex) when (ex.IsTransient && !cancellationToken.IsCancellationRequested)
        {
            // Most often a pooled connection the server dropped (restart, failover): once more on a fresh connection.
            _dataSource.Clear();
            try
            {
                await AddSubmissionsOnceAsync(batch, cancellationToken);
            }
            catch (PostgresException duplicate) when (duplicate is { SqlState: PostgresErrorCodes.UniqueViolation, ConstraintName: "submissions_id_key" })
            {
                // The ids are new GUIDs, so only the first attempt can have stored them: it committed, and only its
                // answer was lost with the connection.
            }
        }
    }

    private async Task AddSubmissionsOnceAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
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
        command.Parameters.Add(Text(s.ClientName));
        return command;
    }

    /// <summary>
    /// A submission whose outcome names a Patient version that is not stamped yet reads as still queued: "processed"
    /// promises that <c>GET /v1/Patient/{id}</c> returns that version (or a later one), and an unstamped version is
    /// invisible. The visible version only grows, so the comparison is exact.
    /// </summary>
    private static readonly string SubmissionSql = $"""
        SELECT s.tenant, s.seq, CASE WHEN waiting THEN {SubmissionStateSql.Queued} ELSE s.state END, s.accepted_at,
            CASE WHEN waiting THEN NULL ELSE s.processed_at END, CASE WHEN waiting THEN NULL ELSE s.patient_id END,
            CASE WHEN waiting THEN NULL ELSE s.patient_version END, CASE WHEN waiting THEN NULL ELSE s.reason END
        FROM submissions s
        LEFT JOIN patients p ON p.id = s.patient_id
        CROSS JOIN LATERAL (SELECT s.patient_version > coalesce(p.version, 0) AS waiting) w
        WHERE s.id = $1;
        """;

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => GetSubmissionOnceAsync(id, ct), cancellationToken);

    private async Task<SubmissionRecord?> GetSubmissionOnceAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(SubmissionSql);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return StoredRows.Submission(id, reader);
    }

    public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) =>
        RetryOnceAsync(async ct =>
        {
            await using var command = _dataSource.CreateCommand(StoredRows.QueueStatisticsQuery);
            return await StoredRows.QueueStatisticsAsync(command, ct);
        }, cancellationToken);

    /// <summary>
    /// From the read connection; a Patient it does not know is looked up on the primary too, so a standby that lags
    /// never answers 404 for a Patient whose submission's status already says it was processed. It may answer an
    /// older version while it lags (stale, never wrong); an unknown id costs one read of the primary.
    /// </summary>
    public async Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        await RetryOnceAsync(_readDataSource, ct => GetPatientOnceAsync(_readDataSource, id, ct), cancellationToken)
        ?? (_readDataSource == _dataSource ? null : await RetryOnceAsync(ct => GetPatientOnceAsync(_dataSource, id, ct), cancellationToken));

    private static async Task<PatientRecord?> GetPatientOnceAsync(NpgsqlDataSource dataSource, string id, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"SELECT {StoredRows.PatientColumns} FROM patients WHERE id = $1 AND {Stamped};");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? StoredRows.Patient(reader) : null;
    }

    /// <summary>
    /// From the read connection. A standby replays commits in WAL order and the feed's versions become visible in
    /// commit order, so a standby shows a prefix of the feed: a page may end earlier than on the primary, never skip.
    /// </summary>
    public Task<PatientPage> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) =>
        RetryOnceAsync(_readDataSource, ct => SearchOnceAsync(query, ct), cancellationToken);

    private async Task<PatientPage> SearchOnceAsync(PatientPageQuery query, CancellationToken cancellationToken)
    {
        await using var command = _readDataSource.CreateCommand();
        BuildSearch(command, query);
        return await StoredRows.PatientPageAsync(command, query, cancellationToken);
    }

    /// <summary>
    /// Whether a Patient row is visible: it has a stamped version. A new Patient's row exists unstamped from its
    /// apply until the sequencer stamps it (PostgresApply.cs, <see cref="PostgresSequencer"/>).
    /// </summary>
    private const string Stamped = "last_updated IS NOT NULL";

    /// <summary>The keyset page query (<see cref="KeysetQuery"/>) with this engine's parameters.</summary>
    internal static void BuildSearch(NpgsqlCommand command, PatientPageQuery query) =>
        command.CommandText = KeysetQuery.Build(query, value =>
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
            return $"${command.Parameters.Count}";
        }, Stamped);

    /// <summary>
    /// Stamps what is pending now, as the sequencer's leader does, without being the leader: for tests and tools that
    /// run no <see cref="PostgresSequencer"/>. Waits while a leader holds the sequencer lock. Returns the versions stamped.
    /// </summary>
    internal async Task<int> StampPendingAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var total = 0;
        int stamped;
        do
        {
            stamped = (await PostgresSequencer.StampAsync(connection, _time, leader: false, cancellationToken)).Count;
            total += stamped;
        }
        while (stamped == PostgresSequencer.MaxPerTick);

        return total;
    }

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => GetOrCreateSecretOnceAsync(name, create, ct), cancellationToken);

    private async Task<byte[]> GetOrCreateSecretOnceAsync(string name, Func<byte[]> create, CancellationToken cancellationToken)
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
        try
        {
            await AppendAuditOnceAsync(entries, cancellationToken);
        }
        catch (NpgsqlException ex) when (ex.IsTransient)
        {
            // Not repeated (a lost commit answer would duplicate lines), but the caller's retry gets a fresh connection.
            _dataSource.Clear();
            throw;
        }
    }

    /// <summary>
    /// One transaction with <c>synchronous_commit = off</c>: the commit returns without waiting for the WAL flush,
    /// which the WAL writer does within 3 × <c>wal_writer_delay</c> (600 ms by default). A crash of the database
    /// server can lose the batches committed in that window; nothing else is weakened (docs/OPERATIONS.md).
    /// </summary>
    private async Task AppendAuditOnceAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using var batch = new NpgsqlBatch(connection, tx);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SET LOCAL synchronous_commit = off;"));
        var command = new NpgsqlBatchCommand("""
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
        batch.BatchCommands.Add(command);
        await batch.ExecuteNonQueryAsync(cancellationToken);
        await tx.CommitAsync(cancellationToken);
    }

    public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => ReadAuditOnceAsync(organisation, limit, ct), cancellationToken);

    private async Task<IReadOnlyList<AuditEntry>> ReadAuditOnceAsync(string? organisation, int limit, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(StoredRows.AuditQuery(organisation is null ? null : "$2", "$1"));
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        if (organisation is not null)
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = organisation });
        }

        return await StoredRows.AuditAsync(command, cancellationToken);
    }

    public Task CheckHealthAsync(CancellationToken cancellationToken) =>
        RetryOnceAsync(async ct =>
        {
            // A real round trip: a pooled connection to a restarted server fails here, not on open.
            await using var command = _dataSource.CreateCommand("SELECT count(*) FROM schema_migrations;");
            return await command.ExecuteScalarAsync(ct);
        }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_ownsDataSource)
        {
            await _dataSource.DisposeAsync();
        }
    }

    /// <summary>Runs an operation that is safe to repeat, once more on a fresh connection after a transient failure (<see cref="PostgresRetry"/>).</summary>
    private Task<T> RetryOnceAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken) =>
        RetryOnceAsync(_dataSource, operation, cancellationToken);

    /// <summary>The same on the given pool (the primary's or the read pool), so a failure clears the pool that failed.</summary>
    private static Task<T> RetryOnceAsync<T>(NpgsqlDataSource dataSource, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken) =>
        dataSource.OnceMoreOnFreshConnectionAsync(operation, cancellationToken);

    private long Now() => FeedTime.FromDateTimeOffset(_time.GetUtcNow());

    private static NpgsqlParameter Text(string? value) =>
        new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };
}
