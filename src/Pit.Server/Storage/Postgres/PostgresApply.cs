using System.Data;
using Microsoft.Extensions.Logging;
using Npgsql;
using Pit.Server.Upsert;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// Applying the queue, in parallel per tenant. An apply transaction first takes the transaction-scoped locks of some
/// tenants (<see cref="PostgresSchema.TenantApplyLockClass"/>, try-locks, so it never waits and never deadlocks) and
/// claims only their queued rows: one transaction at a time per tenant keeps identifier matching and versioning
/// race-free within the tenant (tenants never share a Patient), while instances apply different tenants at once.
/// New versions are written unstamped (<c>pending_*</c> columns), invisible to every read, and the submission's status
/// says "processed" only once they are stamped; <see cref="PostgresSequencer"/> stamps them in commit order.
/// </summary>
internal sealed partial class PostgresPitStore
{
    /// <summary>Queue rows looked at to find tenants to lock, per row of the batch.</summary>
    private const int TenantWindowFactor = 4;

    // The head of the queue and the tenants in it, in order of their first row there, with their row counts and last row.
    internal static readonly string CandidateTenantsSql = $"""
        SELECT tenant, count(*), max(seq) FROM (
            SELECT seq, tenant FROM submissions WHERE state = {SubmissionStateSql.Queued} AND retry_at <= $1 ORDER BY seq LIMIT $2) head
        GROUP BY tenant ORDER BY min(seq);
        """;

    // Volatile functions are not pushed into or reordered with the function scan: each tenant is tried once, in order.
    private static readonly string LockTenantsSql = $"""
        SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, n)
        WHERE pg_try_advisory_xact_lock({PostgresSchema.TenantApplyLockClass}, hashtext(t)) ORDER BY n;
        """;

    // No FOR UPDATE (SKIP LOCKED): the tenant locks above admit one apply transaction per tenant, so no other
    // transaction can hold or want these rows' locks (the accept path only inserts). Only rows up to the end of the
    // window the tenants were chosen from ($5): when the locked tenants have fewer queued rows than the batch takes,
    // the scan of the queue index stops there instead of running through the whole queue.
    internal static readonly string ClaimSql = $"""
        SELECT seq, tenant, content, content_hash, key_systems, key_values, attempts, id, accepted_at, {StoredRows.ProvenanceColumns} FROM submissions
        WHERE seq IN ({SubmissionStateSql.ClaimWithinBytes($"SELECT seq, octet_length(content) AS size FROM submissions WHERE state = {SubmissionStateSql.Queued} AND retry_at <= $1 AND tenant = ANY($4) AND seq <= $5 ORDER BY seq LIMIT $2", "$3")})
        ORDER BY seq;
        """;

    // The latest applied version is the unstamped one where there is one.
    private static readonly string MatchedPatientsSql = StoredRows.MatchedPatientsQuery("""
        SELECT m.patient_id FROM unnest($1::text[], $2::text[], $3::text[]) AS k(tenant, system, value)
        JOIN patient_keys m ON m.tenant = k.tenant AND m.system = k.system AND m.value = k.value
        """, "coalesce(p.pending_version, p.version)");

    public async Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken)
    {
        try
        {
            try
            {
                return await ApplyBatchAsync(maxCount, maxBytes, oneByOne: false, cancellationToken) with { StampedLater = true };
            }
            catch (PostgresException ex) when (!ex.IsTransient)
            {
                // A set-based statement failed and the database does not say for which submission. Redo the batch
                // one submission at a time, each under a savepoint, so the failure is charged to its own submission.
                _logger.LogWarning("Set-based apply failed ({SqlState}); applying this batch one submission at a time.", ex.SqlState);
                return await ApplyBatchAsync(maxCount, maxBytes, oneByOne: true, cancellationToken) with { StampedLater = true };
            }
        }
        catch (NpgsqlException ex) when (ex.IsTransient)
        {
            // Not retried here (the worker retries with backoff), but the next attempt should get a fresh connection.
            _dataSource.Clear();
            throw;
        }
    }

    private async Task<AppliedBatch> ApplyBatchAsync(int maxCount, long maxBytes, bool oneByOne, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
        var now = Now();
        var (tenants, windowEnd) = await LockTenantsAsync(connection, tx, now, maxCount, cancellationToken);
        if (tenants.Count == 0)
        {
            await tx.CommitAsync(cancellationToken);
            return AppliedBatch.Empty;
        }

        var pending = new List<PendingSubmission>();
        var attempts = new Dictionary<long, int>();
        await using (var claim = new NpgsqlBatch(connection, tx))
        {
            var select = new NpgsqlBatchCommand(ClaimSql);
            select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now });
            select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = maxCount });
            select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = maxBytes });
            select.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. tenants] });
            select.Parameters.Add(new NpgsqlParameter<long> { TypedValue = windowEnd });
            claim.BatchCommands.Add(select);
            foreach (var sql in QueueScansAsUsual)
            {
                claim.BatchCommands.Add(new NpgsqlBatchCommand(sql));
            }

            await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var systems = reader.GetFieldValue<string[]>(4);
                var values = reader.GetFieldValue<string[]>(5);
                var seq = reader.GetInt64(0);
                var id = reader.GetGuid(7);
                pending.Add(new PendingSubmission(
                    seq, reader.GetString(1), reader.GetFieldValue<byte[]>(2), reader.GetFieldValue<byte[]>(3),
                    systems.Zip(values, (s, v) => new PatientKey(s, v)).ToList(),
                    new TakenSubmission(id, reader.GetInt64(8), reader.GetString(1)),
                    StoredRows.Provenance(id, reader.GetString(1), reader, 9)));
                attempts.Add(seq, reader.GetInt32(6));
            }
        }

        // The planner's lastUpdated is only a placeholder of the right width: the sequencer overwrites it.
        const long clock = 0;
        if (oneByOne)
        {
            foreach (var s in pending)
            {
                await ApplyOneAsync(connection, tx, s, attempts[s.Sequence], clock, cancellationToken);
            }
        }
        else if (pending.Count > 0)
        {
            // The fast path: a constant number of round trips per batch (load, then write the whole plan).
            var plan = ApplyPlanner.Plan(pending, await LoadMatchedAsync(connection, tx, pending, [], cancellationToken), clock, _time);
            await using var write = Batch(connection, tx, PlanCommands(plan, attempts));
            await write.ExecuteNonQueryAsync(cancellationToken);
        }

        await tx.CommitAsync(cancellationToken);
        if (pending.Count > 0)
        {
            await PostgresSequencer.WakeAsync(connection, cancellationToken);
        }

        return new AppliedBatch(pending.ConvertAll(s => s.Taken));
    }

    /// <summary>
    /// Takes the apply locks of the tenants at the head of the queue that no other transaction holds, in the order of
    /// their first queued row, until they hold about <paramref name="maxCount"/> queued rows; returns the tenants
    /// locked and the last queue row the choice looked at. Another instance's transaction, finding the first tenants locked, takes the next ones, so instances
    /// share the queue by tenant. Try-locks never wait, so no order among them is needed to avoid deadlocks.
    /// </summary>
    private static async Task<(List<string> Tenants, long WindowEnd)> LockTenantsAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, long now, int maxCount, CancellationToken cancellationToken)
    {
        var candidates = new List<(string Tenant, long Rows)>();
        long windowEnd = 0;
        var candidatesCommand = new NpgsqlBatchCommand(CandidateTenantsSql);
        candidatesCommand.Parameters.Add(new NpgsqlParameter<long> { TypedValue = now });
        candidatesCommand.Parameters.Add(new NpgsqlParameter<int> { TypedValue = (int)Math.Min(int.MaxValue, (long)maxCount * TenantWindowFactor) });
        await using (var head = Batch(connection, tx, [new NpgsqlBatchCommand(CustomPlans), .. QueueInOrder.Select(sql => new NpgsqlBatchCommand(sql)), candidatesCommand]))
        {
            await using var reader = await head.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                candidates.Add((reader.GetString(0), reader.GetInt64(1)));
                windowEnd = Math.Max(windowEnd, reader.GetInt64(2));
            }
        }

        var locked = new List<string>();
        long lockedRows = 0;
        var next = 0;
        while (lockedRows < maxCount && next < candidates.Count)
        {
            // Try as many tenants as would fill the batch if all were free; try more only if some were not.
            var chunk = new List<string>();
            for (long rows = lockedRows; next < candidates.Count && rows < maxCount; next++)
            {
                chunk.Add(candidates[next].Tenant);
                rows += candidates[next].Rows;
            }

            await using var tryLock = new NpgsqlCommand(LockTenantsSql, connection, tx);
            tryLock.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. chunk] });
            await using var reader = await tryLock.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var tenant = reader.GetString(0);
                locked.Add(tenant);
                lockedRows += candidates.First(c => c.Tenant == tenant).Rows;
            }
        }

        return (locked, windowEnd);
    }

    /// <summary>
    /// The careful path, used when a set-based write failed: one submission under its own savepoint, so a database
    /// error rolls back that submission only and is counted as one of its attempts.
    /// </summary>
    private async Task ApplyOneAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, PendingSubmission s, int attempts, long clock, CancellationToken cancellationToken)
    {
        var attemptsBySequence = new Dictionary<long, int> { [s.Sequence] = attempts };
        try
        {
            var existing = await LoadMatchedAsync(connection, tx, [s], [new NpgsqlBatchCommand("SAVEPOINT apply_one;")], cancellationToken);
            var plan = ApplyPlanner.Plan([s], existing, clock, _time);
            await using var write = Batch(connection, tx, [.. PlanCommands(plan, attemptsBySequence), new("RELEASE SAVEPOINT apply_one;")]);
            await write.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception ex) when (IsApplyFailure(ex, connection))
        {
            await using var batch = Batch(connection, tx, [
                new("ROLLBACK TO SAVEPOINT apply_one;"),
                new("RELEASE SAVEPOINT apply_one;"),
                MarkSubmissions([FailedAttempt(s.Sequence, attempts, ex, Now())])]);
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>The Patients the identifiers of <paramref name="batch"/> point at, after <paramref name="before"/>.</summary>
    private static async Task<IReadOnlyList<ExistingPatient>> LoadMatchedAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, IReadOnlyList<PendingSubmission> batch, IReadOnlyList<NpgsqlBatchCommand> before,
        CancellationToken cancellationToken)
    {
        var lookup = batch.SelectMany(s => s.Keys.Select(k => (s.Tenant, k.System, k.Value))).Distinct().ToList();
        var load = new NpgsqlBatchCommand(MatchedPatientsSql);
        load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.Tenant).ToArray() });
        load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.System).ToArray() });
        load.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = lookup.Select(k => k.Value).ToArray() });
        await using var command = Batch(connection, tx, [.. before, load]);

        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await StoredRows.MatchedPatientsAsync(reader, cancellationToken);
    }

    /// <summary>
    /// The apply's statements are auto-prepared on long-lived connections, and a generic plan made while a table was
    /// young (a new database, before autovacuum's first ANALYZE) stays a sequential scan as the table grows until the
    /// next ANALYZE. Measured on a fresh database under POST load: until autovacuum's first ANALYZE, a minute in, every
    /// batch scanned submissions and patient_keys in full (32 ms for the mark and 26 ms for the match of an 85-row batch);
    /// with custom plans 2 ms and under 1 ms. Planning the few statements of a batch costs well under a millisecond.
    /// </summary>
    internal const string CustomPlans = "SET LOCAL plan_cache_mode = force_custom_plan;";

    /// <summary>
    /// The head of the queue is read in order from its partial index (<c>submissions_queued</c>), which stops after the
    /// rows a batch needs. Measured in a drain of 200,000 queued submissions on a fresh table (no statistics yet, so
    /// PostgreSQL estimated ~400 queued rows, fewer than the tenant window's 1,024): the planner chose a bitmap scan of
    /// every queued row and a top-N sort instead, 54 ms per batch on average (128 ms at 160,000 queued) and 56 % of
    /// the database time of the whole drain, falling only as the queue did. Statistics taken while the queue was short
    /// (the usual case) would choose it just the same when a backlog builds up, e.g. after an outage, which is when
    /// the drain rate matters. Set before the candidates and the claim, put back after the claim.
    /// </summary>
    internal static readonly string[] QueueInOrder = ["SET LOCAL enable_bitmapscan = off;", "SET LOCAL enable_seqscan = off;"];

    private static readonly string[] QueueScansAsUsual = ["SET LOCAL enable_bitmapscan TO DEFAULT;", "SET LOCAL enable_seqscan TO DEFAULT;"];

    /// <summary>The statements that write <paramref name="plan"/>: Patients, their identifiers, touches, outcomes.</summary>
    private List<NpgsqlBatchCommand> PlanCommands(ApplyPlan plan, IReadOnlyDictionary<long, int> attempts)
    {
        var commands = new List<NpgsqlBatchCommand>(5);
        var written = plan.Writes;
        if (written.Count > 0)
        {
            // Unstamped: a new Patient's row has no lastUpdated or JSON yet (invisible); an existing one keeps its
            // visible version until the sequencer moves the pending one in. Identifiers, content hash and last
            // sequence are the apply's own and take effect at once (for matching within the tenant).
            var upsert = new NpgsqlBatchCommand("""
                INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json, pending_version, pending_json, pending_stamp_at)
                SELECT w.id, w.tenant, 0, NULL, w.hash, w.seq, NULL, w.version, w.json, w.stamp_at
                FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::bytea[], $6::bigint[], $7::bytea[]) AS w(id, tenant, version, stamp_at, hash, seq, json)
                ON CONFLICT (id) DO UPDATE SET content_hash = excluded.content_hash, last_seq = excluded.last_seq,
                    pending_version = excluded.pending_version, pending_json = excluded.pending_json, pending_stamp_at = excluded.pending_stamp_at;
                """);
            upsert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. written.Select(p => p.Id)] });
            upsert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. written.Select(p => p.Tenant)] });
            upsert.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. written.Select(p => p.Version)] });
            upsert.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. written.Select(p => PatientJson.LastUpdatedOffset(p.Json))] });
            upsert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. written.Select(p => p.ContentHash)] });
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. written.Select(p => p.LastSequence)] });
            upsert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. written.Select(p => p.Json)] });
            commands.Add(upsert);

            var replaced = written.Where(p => p.MayHaveStoredKeys).Select(p => p.Id).ToArray();
            if (replaced.Length > 0)
            {
                var delete = new NpgsqlBatchCommand("DELETE FROM patient_keys WHERE patient_id = ANY($1::text[]);");
                delete.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = replaced });
                commands.Add(delete);
            }

            var keys = written.SelectMany(p => p.Keys.Select(k => (p.Id, p.Tenant, k.System, k.Value))).ToList();
            var insert = new NpgsqlBatchCommand("""
                INSERT INTO patient_keys (tenant, system, value, patient_id)
                SELECT k.tenant, k.system, k.value, k.id FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(id, tenant, system, value);
                """);
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. keys.Select(k => k.Id)] });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. keys.Select(k => k.Tenant)] });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. keys.Select(k => k.System)] });
            insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. keys.Select(k => k.Value)] });
            commands.Add(insert);
        }

        if (plan.Touches.Count > 0)
        {
            var touch = new NpgsqlBatchCommand("""
                UPDATE patients AS p SET last_seq = greatest(p.last_seq, t.seq)
                FROM unnest($1::text[], $2::bigint[]) AS t(id, seq) WHERE p.id = t.id;
                """);
            touch.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. plan.Touches.Select(t => t.PatientId)] });
            touch.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. plan.Touches.Select(t => t.LastSequence)] });
            commands.Add(touch);
        }

        commands.Add(MarkSubmissions([.. plan.Outcomes.Select(o => o.Error is null
            ? new SubmissionMark(o.Sequence, o.State, o.ProcessedAt, o.PatientId, o.Version, o.Reason, null, null, null)
            : FailedAttempt(o.Sequence, attempts[o.Sequence], o.Error, o.ProcessedAt))]));
        return commands;
    }

    private static NpgsqlBatch Batch(NpgsqlConnection connection, NpgsqlTransaction tx, IEnumerable<NpgsqlBatchCommand> commands)
    {
        var batch = new NpgsqlBatch(connection, tx);
        foreach (var command in commands)
        {
            batch.BatchCommands.Add(command);
        }

        return batch;
    }

    /// <summary>
    /// Whether <paramref name="ex"/> from applying one submission counts as an attempt. Transient database errors
    /// (broken connection, serialization failure, shutdown) do not, nor does a process short of memory
    /// (<see cref="ApplyPlanner.IsAboutSubmission"/>): they abort the whole batch, which is retried.
    /// </summary>
    private static bool IsApplyFailure(Exception ex, NpgsqlConnection connection) =>
        ApplyPlanner.IsAboutSubmission(ex)
        && ex is not NpgsqlException { IsTransient: true }
        && connection.FullState == ConnectionState.Open;

    /// <summary>The mark of a failed attempt: retried after a growing delay, or Failed once attempts run out.</summary>
    private SubmissionMark FailedAttempt(long sequence, int previousAttempts, Exception ex, long now)
    {
        var attempts = previousAttempts + 1;
        // Type names only, in the row and in the log: exception messages may quote health data.
        var error = ex is PostgresException pg ? $"{ex.GetType().Name} {pg.SqlState}" : ex.GetType().Name;
        if (attempts >= _options.MaxApplyAttempts)
        {
            _logger.LogError("Submission {Sequence} failed for good after {Attempts} attempts: {Error}.", sequence, attempts, error);
            return new SubmissionMark(sequence, SubmissionState.Failed, now, null, null,
                $"Processing failed after {attempts} attempts: {error}.", attempts, null, error);
        }

        _logger.LogWarning("Submission {Sequence} could not be applied (attempt {Attempts}): {Error}; will retry.", sequence, attempts, error);
        var delay = new RetryBackoff(_options.ApplyRetryDelay, _options.ApplyRetryMaxDelay).DelayAfter(attempts).Ticks / TimeSpan.TicksPerMicrosecond;
        return new SubmissionMark(sequence, SubmissionState.Queued, null, null, null, null, attempts, now + delay, error);
    }

    private static NpgsqlBatchCommand MarkSubmissions(IReadOnlyList<SubmissionMark> marks)
    {
        var command = new NpgsqlBatchCommand($"""
            UPDATE submissions AS s SET state = u.state, processed_at = u.processed_at, patient_id = u.patient_id,
                patient_version = u.version, reason = u.reason, attempts = coalesce(u.attempts, s.attempts),
                retry_at = coalesce(u.retry_at, s.retry_at), last_error = coalesce(u.last_error, s.last_error),
                content = {SubmissionStateSql.RetainedContent("u.state", "s.content")}
            FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::text[], $5::integer[], $6::text[], $7::integer[], $8::bigint[], $9::text[])
                AS u(seq, state, processed_at, patient_id, version, reason, attempts, retry_at, last_error)
            WHERE s.seq = u.seq;
            """);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. marks.Select(o => o.Sequence)] });
        command.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = [.. marks.Select(o => (short)o.State)] });
        command.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = [.. marks.Select(o => o.ProcessedAt)] });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = [.. marks.Select(o => o.PatientId)] });
        command.Parameters.Add(new NpgsqlParameter<int?[]> { TypedValue = [.. marks.Select(o => o.Version)] });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = [.. marks.Select(o => o.Reason)] });
        command.Parameters.Add(new NpgsqlParameter<int?[]> { TypedValue = [.. marks.Select(o => o.Attempts)] });
        command.Parameters.Add(new NpgsqlParameter<long?[]> { TypedValue = [.. marks.Select(o => o.RetryAt)] });
        command.Parameters.Add(new NpgsqlParameter<string?[]> { TypedValue = [.. marks.Select(o => o.LastError)] });
        return command;
    }

    /// <summary>What is written to one submission row; null attempts, retry time and error leave the stored values.</summary>
    private sealed record SubmissionMark(
        long Sequence, SubmissionState State, long? ProcessedAt, string? PatientId, int? Version, string? Reason,
        int? Attempts, long? RetryAt, string? LastError);
}
