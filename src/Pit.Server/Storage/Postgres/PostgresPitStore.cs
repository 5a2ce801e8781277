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
/// Queue: submissions are rows, inserted by a group commit (one transaction, one round trip per batch). Every
/// instance's worker calls <see cref="ApplyPendingAsync"/>, which claims queued rows in acceptance order with
/// <c>FOR UPDATE SKIP LOCKED</c> and marks each applied, unchanged, superseded or failed in the same transaction that
/// writes the Patient. A submission whose apply throws is retried after a growing delay and ends as Failed after
/// <see cref="PostgresStoreOptions.MaxApplyAttempts"/>; transient database errors are not counted.
/// </para>
/// <para>
/// Change feed: every apply transaction first takes one transaction-scoped advisory lock (<see
/// cref="PostgresSchema.FeedLockKey"/>) and holds it to commit; only then does it claim rows and read the clock
/// (<c>max(last_updated)</c>). Apply transactions therefore commit one after the other, and each one's
/// <c>lastUpdated</c> values are above everything committed before it, so <c>lastUpdated</c> order is commit
/// (visibility) order across all instances, whatever their clocks say. The same lock makes identifier matching
/// race-free (two instances can never both create a Patient for one identifier) and keeps acceptance order across
/// instances. Instances share the apply work by taking turns; a batch costs a handful of round trips (see
/// <c>ApplySetBasedAsync</c>), so the serial section is short.
/// </para>
/// </summary>
internal sealed class PostgresPitStore : IPitStore, IQueueStatistics, IAsyncDisposable
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

        if (_options.ApplyRetryDelay < TimeSpan.Zero || _options.ApplyRetryMaxDelay < _options.ApplyRetryDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Pit:Storage:ApplyRetryDelay must be >= 0 and <= Pit:Storage:ApplyRetryMaxDelay.");
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
        var dataSource = CreateDataSource(storage.ConnectionString!);
        return new PostgresPitStore(
            dataSource, services.GetRequiredService<TimeProvider>(), options,
            services.GetRequiredService<ILogger<PostgresPitStore>>(), ownsDataSource: true);
    }

    /// <summary>
    /// A data source for <paramref name="connectionString"/> with this engine's defaults where the string leaves them
    /// unset: automatic statement preparation (the engine's statements are few and repeated) and an application name.
    /// </summary>
    public static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
        {
            settings.MaxAutoPrepare = 64;
            settings.AutoPrepareMinUsages = 2;
        }

        settings.ApplicationName ??= "pit-server";
        return builder.Build();
    }

    /// <summary>The pool this store works on; other PostgreSQL-backed services of the server share it.</summary>
    internal NpgsqlDataSource DataSource => _dataSource;

    public Task InitializeAsync(CancellationToken cancellationToken) =>
        PostgresSchema.MigrateAsync(_dataSource, _logger, cancellationToken);

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
        return command;
    }

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => GetSubmissionOnceAsync(id, ct), cancellationToken);

    private async Task<SubmissionRecord?> GetSubmissionOnceAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            SELECT {StoredRows.SubmissionColumns}
            FROM submissions WHERE id = $1;
            """);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return StoredRows.Submission(id, reader);
    }

    public async Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT count(*), min(accepted_at) FROM submissions WHERE state = 0;");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new QueueStatistics(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1));
    }

    public async Task<IReadOnlyList<QueuedSubmission>> PeekQueuedAsync(int maxCount, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT id, accepted_at FROM submissions WHERE state = 0 ORDER BY seq LIMIT $1;");
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxCount });
        var queued = new List<QueuedSubmission>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            queued.Add(new QueuedSubmission(reader.GetGuid(0), reader.GetInt64(1)));
        }

        return queued;
    }

    public async Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken)
    {
        try
        {
            return await ApplyPendingOnceAsync(maxCount, cancellationToken);
        }
        catch (NpgsqlException ex) when (ex.IsTransient)
        {
            // Not retried here (the worker retries with backoff), but the next attempt should get a fresh connection.
            _dataSource.Clear();
            throw;
        }
    }

    private async Task<int> ApplyPendingOnceAsync(int maxCount, CancellationToken cancellationToken)
    {
        try
        {
            return await ApplyBatchAsync(maxCount, oneByOne: false, cancellationToken);
        }
        catch (PostgresException ex) when (!ex.IsTransient)
        {
            // A set-based statement failed and the database does not say for which submission. Redo the batch one
            // submission at a time, each under a savepoint, so the failure is charged to its own submission only.
            _logger.LogWarning(ex, "Set-based apply failed ({SqlState}); applying this batch one submission at a time.", ex.SqlState);
            return await ApplyBatchAsync(maxCount, oneByOne: true, cancellationToken);
        }
    }

    private async Task<int> ApplyBatchAsync(int maxCount, bool oneByOne, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);

        // The feed lock first, held to commit: everything below (claim, clock, matching) sees every earlier apply.
        await using (var feedLock = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgresSchema.FeedLockKey});", connection, tx))
        {
            await feedLock.ExecuteNonQueryAsync(cancellationToken);
        }

        var pending = new List<Claimed>();
        long clock;
        await using (var claim = new NpgsqlBatch(connection, tx))
        {
            var select = new NpgsqlBatchCommand("""
                SELECT seq, tenant, content, content_hash, key_systems, key_values, attempts FROM submissions
                WHERE state = 0 AND retry_at <= $1 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED;
                """);
            select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = Now() });
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
                    systems.Zip(values, (s, v) => new PatientKey(s, v)).Distinct().ToList(), reader.GetInt32(6)));
            }

            await reader.NextResultAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            clock = reader.GetInt64(0);
        }

        if (pending.Count > 0)
        {
            if (oneByOne)
            {
                await ApplyOneByOneAsync(connection, tx, pending, clock, cancellationToken);
            }
            else
            {
                await ApplySetBasedAsync(connection, tx, pending, clock, cancellationToken);
            }
        }

        await tx.CommitAsync(cancellationToken);
        return pending.Count;
    }

    /// <summary>
    /// The fast path: a constant number of round trips per batch. Loads every Patient the batch's identifiers point
    /// at (with all their identifiers), decides each submission in acceptance order against that in-memory picture
    /// (so later submissions see earlier ones of the same batch), then writes the final state of each touched Patient
    /// and every outcome in one round trip. Only the final version of a Patient is stored, so versions superseded
    /// inside one batch never become visible; their lastUpdated values are simply skipped.
    /// </summary>
    private async Task ApplySetBasedAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<Claimed> pending, long clock, CancellationToken cancellationToken)
    {
        var patients = new Dictionary<string, PatientState>(StringComparer.Ordinal);
        var owners = new Dictionary<(string Tenant, string System, string Value), PatientState>();
        var lookup = pending.SelectMany(s => s.Keys.Select(k => (s.Tenant, k.System, k.Value))).Distinct().ToList();
        await using (var load = new NpgsqlCommand("""
            SELECT p.id, p.tenant, p.version, p.content_hash, p.last_seq, pk.system, pk.value
            FROM patients p JOIN patient_keys pk ON pk.patient_id = p.id
            WHERE p.id IN (
                SELECT m.patient_id FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, system, value)
                JOIN patient_keys m ON m.tenant = k.tenant AND m.system = k.system AND m.value = k.value);
            """, connection, tx))
        {
            load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.Tenant).ToArray() });
            load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.System).ToArray() });
            load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.Value).ToArray() });
            await using var reader = await load.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var id = reader.GetString(0);
                if (!patients.TryGetValue(id, out var patient))
                {
                    patient = new PatientState(id, reader.GetString(1))
                    {
                        Version = reader.GetInt32(2),
                        Hash = reader.GetFieldValue<byte[]>(3),
                        LastSequence = reader.GetInt64(4),
                    };
                    patients.Add(id, patient);
                }

                var key = new PatientKey(reader.GetString(5), reader.GetString(6));
                patient.Keys.Add(key);
                owners[(patient.Tenant, key.System, key.Value)] = patient;
            }
        }

        var outcomes = new List<Outcome>(pending.Count);
        foreach (var s in pending)
        {
            var now = Now();
            try
            {
                var matched = new List<PatientState>(1);
                foreach (var key in s.Keys)
                {
                    if (owners.TryGetValue((s.Tenant, key.System, key.Value), out var owner) && !matched.Contains(owner))
                    {
                        matched.Add(owner);
                    }
                }

                var decision = PatientUpsert.Decide(
                    s.Sequence, s.Hash, matched.ConvertAll(m => new ExistingPatient(m.Id, m.Version, m.Hash, m.LastSequence)), PatientUpsert.NewPatientId);
                switch (decision.Action)
                {
                    case UpsertAction.Write:
                        var lastUpdated = Math.Max(now, clock + 1);
                        // Compose first: if it throws, nothing in the picture has changed.
                        var json = PatientJson.Compose(s.Content, decision.PatientId!, decision.Version, lastUpdated, s.Tenant);
                        if (!patients.TryGetValue(decision.PatientId!, out var patient))
                        {
                            patient = new PatientState(decision.PatientId!, s.Tenant);
                            patients.Add(patient.Id, patient);
                        }

                        foreach (var old in patient.Keys)
                        {
                            owners.Remove((patient.Tenant, old.System, old.Value));
                        }

                        patient.Keys.Clear();
                        patient.Keys.AddRange(s.Keys);
                        foreach (var key in s.Keys)
                        {
                            owners[(patient.Tenant, key.System, key.Value)] = patient;
                        }

                        patient.Version = decision.Version;
                        patient.Hash = s.Hash;
                        patient.LastSequence = s.Sequence;
                        patient.LastUpdated = lastUpdated;
                        patient.Json = json;
                        clock = lastUpdated;
                        outcomes.Add(Outcome.Done(s.Sequence, SubmissionState.Applied, now, patient.Id, decision.Version, null));
                        break;
                    case UpsertAction.Unchanged:
                        var current = patients[decision.PatientId!];
                        current.LastSequence = Math.Max(current.LastSequence, s.Sequence);
                        current.SequenceTouched = true;
                        outcomes.Add(Outcome.Done(s.Sequence, SubmissionState.Unchanged, now, decision.PatientId, decision.Version, null));
                        break;
                    case UpsertAction.Superseded:
                        outcomes.Add(Outcome.Done(s.Sequence, SubmissionState.Superseded, now, decision.PatientId, decision.Version, null));
                        break;
                    default:
                        outcomes.Add(Outcome.Done(s.Sequence, SubmissionState.Failed, now, null, null, decision.Reason));
                        break;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                outcomes.Add(FailedAttempt(s, ex, now));
            }
        }

        await using var write = new NpgsqlBatch(connection, tx);
        var written = patients.Values.Where(p => p.Json is not null).ToList();
        if (written.Count > 0)
        {
            var upsert = new NpgsqlBatchCommand("""
                INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
                SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bytea[])
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                    content_hash = excluded.content_hash, last_seq = excluded.last_seq, json = excluded.json;
                """);
            upsert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = written.ConvertAll(p => p.Id).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = written.ConvertAll(p => p.Tenant).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = written.ConvertAll(p => p.Version).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = written.ConvertAll(p => p.LastUpdated).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = written.ConvertAll(p => p.Hash).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = written.ConvertAll(p => p.LastSequence).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = written.ConvertAll(p => p.Json!).ToArray() });
            write.BatchCommands.Add(upsert);
            var keys = written.SelectMany(p => p.Keys.Select(k => (p.Id, p.Tenant, k.System, k.Value))).ToList();
            foreach (var command in ReplaceKeys(written.ConvertAll(p => p.Id).ToArray(), keys))
            {
                write.BatchCommands.Add(command);
            }
        }

        var touched = patients.Values.Where(p => p.Json is null && p.SequenceTouched).ToList();
        if (touched.Count > 0)
        {
            var touch = new NpgsqlBatchCommand("""
                UPDATE patients AS p SET last_seq = greatest(p.last_seq, t.seq)
                FROM unnest($1::text[], $2::bigint[]) AS t(id, seq) WHERE p.id = t.id;
                """);
            touch.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = touched.ConvertAll(p => p.Id).ToArray() });
            touch.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = touched.ConvertAll(p => p.LastSequence).ToArray() });
            write.BatchCommands.Add(touch);
        }

        write.BatchCommands.Add(MarkOutcomes(outcomes));
        await write.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// The careful path, used when a set-based write failed: each submission under its own savepoint, so a database
    /// error rolls back that submission only and is counted as one of its attempts.
    /// </summary>
    private async Task ApplyOneByOneAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<Claimed> pending, long clock, CancellationToken cancellationToken)
    {
        foreach (var s in pending)
        {
            var now = Now();
            try
            {
                clock = await ApplyOneAsync(connection, tx, s, clock, now, cancellationToken);
            }
            catch (Exception ex) when (IsApplyFailure(ex, connection))
            {
                await using var batch = new NpgsqlBatch(connection, tx)
                {
                    BatchCommands =
                    {
                        new NpgsqlBatchCommand("ROLLBACK TO SAVEPOINT apply_one;"),
                        new NpgsqlBatchCommand("RELEASE SAVEPOINT apply_one;"),
                        MarkOutcomes([FailedAttempt(s, ex, now)]),
                    },
                };
                await batch.ExecuteNonQueryAsync(cancellationToken);
            }
        }
    }

    private static async Task<long> ApplyOneAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, Claimed s, long clock, long now, CancellationToken cancellationToken)
    {
        var systems = s.Keys.Select(k => k.System).ToArray();
        var values = s.Keys.Select(k => k.Value).ToArray();
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
        Outcome outcome;
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
                foreach (var command in ReplaceKeys([decision.PatientId!], s.Keys.Select(k => (decision.PatientId!, s.Tenant, k.System, k.Value)).ToList()))
                {
                    write.BatchCommands.Add(command);
                }
                outcome = Outcome.Done(s.Sequence, SubmissionState.Applied, now, decision.PatientId, decision.Version, null);
                result = lastUpdated;
                break;
            case UpsertAction.Unchanged:
                var touch = new NpgsqlBatchCommand("UPDATE patients SET last_seq = greatest(last_seq, $1) WHERE id = $2;");
                touch.Parameters.Add(new NpgsqlParameter<long> { TypedValue = s.Sequence });
                touch.Parameters.Add(new NpgsqlParameter<string> { TypedValue = decision.PatientId! });
                write.BatchCommands.Add(touch);
                outcome = Outcome.Done(s.Sequence, SubmissionState.Unchanged, now, decision.PatientId, decision.Version, null);
                break;
            case UpsertAction.Superseded:
                outcome = Outcome.Done(s.Sequence, SubmissionState.Superseded, now, decision.PatientId, decision.Version, null);
                break;
            default:
                outcome = Outcome.Done(s.Sequence, SubmissionState.Failed, now, null, null, decision.Reason);
                break;
        }

        write.BatchCommands.Add(MarkOutcomes([outcome]));
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

    /// <summary>The outcome of a failed attempt: retried after a growing delay, or Failed once attempts run out.</summary>
    private Outcome FailedAttempt(Claimed s, Exception ex, long now)
    {
        var attempts = s.Attempts + 1;
        // Type names only: exception messages may quote health data.
        var error = ex is PostgresException pg ? $"{ex.GetType().Name} {pg.SqlState}" : ex.GetType().Name;
        if (attempts >= _options.MaxApplyAttempts)
        {
            _logger.LogError(ex, "Submission {Sequence} failed for good after {Attempts} attempts.", s.Sequence, attempts);
            return new Outcome(s.Sequence, SubmissionState.Failed, now, null, null,
                $"Processing failed after {attempts} attempts: {error}.", attempts, null, error);
        }

        _logger.LogWarning(ex, "Submission {Sequence} could not be applied (attempt {Attempts}); will retry.", s.Sequence, attempts);
        var delay = Math.Min(
            _options.ApplyRetryDelay.Ticks * (1L << Math.Min(attempts - 1, 20)),
            _options.ApplyRetryMaxDelay.Ticks) / TimeSpan.TicksPerMicrosecond;
        return new Outcome(s.Sequence, SubmissionState.Queued, null, null, null, null, attempts, now + delay, error);
    }

    private static IEnumerable<NpgsqlBatchCommand> ReplaceKeys(string[] patientIds, List<(string Id, string Tenant, string System, string Value)> keys)
    {
        var delete = new NpgsqlBatchCommand("DELETE FROM patient_keys WHERE patient_id = ANY($1::text[]);");
        delete.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = patientIds });
        var insert = new NpgsqlBatchCommand("""
            INSERT INTO patient_keys (tenant, system, value, patient_id)
            SELECT k.tenant, k.system, k.value, k.id FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(id, tenant, system, value);
            """);
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys.ConvertAll(k => k.Id).ToArray() });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys.ConvertAll(k => k.Tenant).ToArray() });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys.ConvertAll(k => k.System).ToArray() });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = keys.ConvertAll(k => k.Value).ToArray() });
        return [delete, insert];
    }

    private static NpgsqlBatchCommand MarkOutcomes(IReadOnlyList<Outcome> outcomes)
    {
        // The content is dropped once processed (kept while queued and when failed, for diagnosis): less health data lies about.
        var command = new NpgsqlBatchCommand("""
            UPDATE submissions AS s SET state = u.state, processed_at = u.processed_at, patient_id = u.patient_id,
                patient_version = u.version, reason = u.reason, attempts = coalesce(u.attempts, s.attempts),
                retry_at = coalesce(u.retry_at, s.retry_at), last_error = coalesce(u.last_error, s.last_error),
                content = CASE WHEN u.state IN (0, 4) THEN s.content END
            FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::integer[], $8::bigint[], $9::text[])
                AS u(seq, state, processed_at, patient_id, version, reason, attempts, retry_at, last_error)
            WHERE s.seq = u.seq;
            """);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = outcomes.Select(o => o.Sequence).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = outcomes.Select(o => (short)o.State).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = outcomes.Select(o => o.ProcessedAt).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = outcomes.Select(o => o.PatientId).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int?[]> { TypedValue = outcomes.Select(o => o.Version).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = outcomes.Select(o => o.Reason).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int?[]> { TypedValue = outcomes.Select(o => o.Attempts).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = outcomes.Select(o => o.RetryAt).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = outcomes.Select(o => o.LastError).ToArray() });
        return command;
    }

    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => GetPatientOnceAsync(id, ct), cancellationToken);

    private async Task<PatientRecord?> GetPatientOnceAsync(string id, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"SELECT {StoredRows.PatientColumns} FROM patients WHERE id = $1;");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? StoredRows.Patient(reader) : null;
    }

    public Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => SearchOnceAsync(query, ct), cancellationToken);

    private async Task<IReadOnlyList<PatientRecord>> SearchOnceAsync(PatientPageQuery query, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand();
        BuildSearch(command, query);
        return await StoredRows.PatientsAsync(command, query.Limit, cancellationToken);
    }

    /// <summary>The keyset page query (<see cref="KeysetQuery"/>) with this engine's parameters.</summary>
    internal static void BuildSearch(NpgsqlCommand command, PatientPageQuery query) =>
        command.CommandText = KeysetQuery.Build(query, value =>
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
            return $"${command.Parameters.Count}";
        });

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

    private async Task AppendAuditOnceAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
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

    public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
        RetryOnceAsync(ct => ReadAuditOnceAsync(organisation, limit, ct), cancellationToken);

    private async Task<IReadOnlyList<AuditEntry>> ReadAuditOnceAsync(string? organisation, int limit, CancellationToken cancellationToken)
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

    /// <summary>
    /// Runs an operation that is safe to repeat. After a transient failure, most often a pooled connection the server
    /// dropped in a restart or failover, it clears the pool and tries once more on a fresh connection, so a recovered
    /// database does not cost a failed request per stale pooled connection.
    /// </summary>
    private async Task<T> RetryOnceAsync<T>(Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        try
        {
            return await operation(cancellationToken);
        }
        catch (NpgsqlException ex) when (ex.IsTransient && !cancellationToken.IsCancellationRequested)
        {
            _dataSource.Clear();
            return await operation(cancellationToken);
        }
    }

    private long Now() => FeedTime.FromDateTimeOffset(_time.GetUtcNow());

    private static NpgsqlParameter Text(string? value) =>
        new() { Value = (object?)value ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text };

    private sealed record Claimed(long Sequence, string Tenant, byte[] Content, byte[] Hash, List<PatientKey> Keys, int Attempts);

    /// <summary>What happens to one submission; null attempts, retry time and error leave the stored values.</summary>
    private sealed record Outcome(
        long Sequence, SubmissionState State, long? ProcessedAt, string? PatientId, int? Version, string? Reason,
        int? Attempts, long? RetryAt, string? LastError)
    {
        public static Outcome Done(long sequence, SubmissionState state, long now, string? patientId, int? version, string? reason) =>
            new(sequence, state, now, patientId, version, reason, null, null, null);
    }

    /// <summary>A Patient as the set-based apply sees it: loaded, then changed by the batch in acceptance order.</summary>
    private sealed class PatientState(string id, string tenant)
    {
        public string Id { get; } = id;
        public string Tenant { get; } = tenant;
        public List<PatientKey> Keys { get; } = [];
        public int Version { get; set; }
        public byte[] Hash { get; set; } = [];
        public long LastSequence { get; set; }
        public long LastUpdated { get; set; }
        /// <summary>Set when the batch wrote a new version.</summary>
        public byte[]? Json { get; set; }
        public bool SequenceTouched { get; set; }
    }
}
