using System.Data;
using Microsoft.Extensions.Options;
using Npgsql;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The one sequencer of a database: gives the versions that apply transactions wrote unstamped (PostgresApply.cs)
/// their <c>lastUpdated</c>, strictly increasing, in short serial transactions, then wakes the feed's waiters.
/// <para>
/// Every instance that processes runs one. They compete for a session advisory lock
/// (<see cref="PostgresSchema.SequencerLockKey"/>) on a connection of their own; the winner is the leader and stamps
/// on that connection, so its ticks can only run while it holds the lock. When its process or connection dies,
/// PostgreSQL ends the session, rolls back the tick in flight and releases the lock, and another instance takes over
/// at its next try (<see cref="PostgresSequencerOptions.SequencerInterval"/>).
/// </para>
/// <para>
/// Why this keeps the feed gap-free: a tick sees only committed apply transactions, and stamps everything it takes
/// above everything stamped before (<see cref="FeedTime.Next"/> over the stored maximum), in one transaction. Stamps
/// therefore become visible in stamp order: a reader that has seen some lastUpdated can never later see a lower one.
/// An apply still open during a tick is taken by a later tick, above this one's stamps. Rows an open apply has locked
/// (a newer version of a Patient whose older one waits) are skipped, not waited for, and stamped later.
/// </para>
/// </summary>
internal sealed class PostgresSequencer(
    NpgsqlDataSource dataSource, IFeedChangeNotifier feed, PitMetrics metrics, TimeProvider time, IOptions<PostgresSequencerOptions> options,
    IHostApplicationLifetime lifetime, ILogger<PostgresSequencer> logger)
    : BackgroundService
{
    /// <summary>The channel an apply transaction notifies after its commit, so the leader stamps at once.</summary>
    public const string WakeChannel = "pit_apply";

    /// <summary>Versions stamped per transaction, so that a tick stays short even behind a long queue.</summary>
    public const int MaxPerTick = 2048;

    internal const string ClockSql = "SELECT coalesce(max(last_updated), 0) FROM patients;";

    // With the acceptance time of the newest submission the pending version carries (last_seq), for the visibility
    // lag: a scalar subquery, i.e. one primary-key probe per row taken, whatever the tick's size (a join was planned as
    // a hash join over submissions for large ticks: 98 ms a tick at 1,100 versions), and null when the submission row
    // is gone, so that nothing can keep a version from being stamped.
    private const string PendingSql = """
        SELECT p.id, p.tenant, (SELECT s.accepted_at FROM submissions s WHERE s.seq = p.last_seq) FROM patients p
        WHERE p.pending_version IS NOT NULL ORDER BY p.last_seq LIMIT $1 FOR NO KEY UPDATE SKIP LOCKED;
        """;

    // Moves the pending version in and writes its stamp over the placeholder in its JSON (same width, so the rest of
    // the bytes stay as they are). The row is rewritten by the update anyway; splicing costs no extra I/O.
    private static readonly string StampSql = $"""
        UPDATE patients AS p SET version = p.pending_version, last_updated = u.stamp,
            json = overlay(p.pending_json PLACING convert_to(u.formatted, 'UTF8') FROM p.pending_stamp_at + 1 FOR {FeedTime.FormattedLength}),
            pending_version = NULL, pending_json = NULL, pending_stamp_at = NULL
        FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(id, stamp, formatted)
        WHERE p.id = u.id;
        """;

    private readonly StoreOutageLog _outage = new(logger, "Stamping applied versions (sequencer)", time);

    // Set by a wake-up heard while a tick ran (Npgsql raises notifications while it reads any answer), so the leader
    // looks again instead of waiting for the next one.
    private volatile bool _woken;

    private int _failures;

    /// <summary>Whether this instance is the leader now (for tests and logs).</summary>
    public bool IsLeader { get; private set; }

    /// <summary>
    /// What one tick stamped: how many versions, of which tenants, and when the newest submission of each was accepted
    /// (microseconds since the epoch; null when its row is gone).
    /// </summary>
    internal readonly record struct Stamped(int Count, IReadOnlyCollection<string> Tenants, IReadOnlyList<long?> AcceptedAt);

    /// <summary>
    /// One tick on <paramref name="connection"/>: takes up to <see cref="MaxPerTick"/> unstamped versions in the order of
    /// their submissions, stamps them and commits. A <paramref name="leader"/> holds the sequencer's session lock on
    /// this connection; anyone else takes it for the transaction (waiting while a leader holds it).
    /// </summary>
    internal static async Task<Stamped> StampAsync(NpgsqlConnection connection, TimeProvider time, bool leader, CancellationToken cancellationToken)
    {
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
        var ids = new List<string>();
        var tenants = new HashSet<string>(StringComparer.Ordinal);
        var acceptedAt = new List<long?>();
        long clock;
        await using (var read = new NpgsqlBatch(connection, tx))
        {
            if (!leader)
            {
                read.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT pg_advisory_xact_lock({PostgresSchema.SequencerLockKey});"));
            }

            read.BatchCommands.Add(new NpgsqlBatchCommand(ClockSql));
            read.BatchCommands.Add(new NpgsqlBatchCommand(PendingSql));
            read.BatchCommands[^1].Parameters.Add(new NpgsqlParameter<int> { TypedValue = MaxPerTick });
            await using var reader = await read.ExecuteReaderAsync(cancellationToken);
            if (!leader)
            {
                await reader.NextResultAsync(cancellationToken);
            }

            await reader.ReadAsync(cancellationToken);
            clock = reader.GetInt64(0);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                ids.Add(reader.GetString(0));
                tenants.Add(reader.GetString(1));
                acceptedAt.Add(reader.IsDBNull(2) ? null : reader.GetInt64(2));
            }
        }

        if (ids.Count == 0)
        {
            await tx.CommitAsync(cancellationToken);
            return new Stamped(0, [], []);
        }

        var stamps = new long[ids.Count];
        var formatted = new string[ids.Count];
        for (var i = 0; i < ids.Count; i++)
        {
            clock = FeedTime.Next(FeedTime.FromDateTimeOffset(time.GetUtcNow()), clock);
            stamps[i] = clock;
            formatted[i] = FeedTime.Format(clock);
        }

        await using (var stamp = new NpgsqlCommand(StampSql, connection, tx))
        {
            stamp.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. ids] });
            stamp.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = stamps });
            stamp.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = formatted });
            await stamp.ExecuteNonQueryAsync(cancellationToken);
        }

        await tx.CommitAsync(cancellationToken);
        return new Stamped(ids.Count, tenants, acceptedAt);
    }

    /// <summary>
    /// Tells the leader, wherever it runs, that an apply has committed. Sent after the commit, outside it: a NOTIFY
    /// inside would hold PostgreSQL's notification lock through the commit's WAL flush and serialise the applies.
    /// A lost wake-up only delays stamping to the leader's next tick.
    /// </summary>
    internal static async Task WakeAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var notify = new NpgsqlCommand($"NOTIFY {WakeChannel};", connection);
        await notify.ExecuteNonQueryAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.Enabled)
        {
            return;
        }

        // Not before every hosted service has started: the schema is migrated by one of them (StorageSetup).
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            try
            {
                await started.Task;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!await TryLeadAsync(settings.SequencerInterval, stoppingToken))
                {
                    await Task.Delay(settings.SequencerInterval, time, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _failures++;
                _outage.Failed(ex);
                try
                {
                    await RetryBackoff.Sequencer.WaitAsync(_failures, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Leads until the connection fails or the host stops, if the lock is free; false if another leads.</summary>
    private async Task<bool> TryLeadAsync(TimeSpan interval, CancellationToken stoppingToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
        await using (var tryLock = new NpgsqlCommand($"SELECT pg_try_advisory_lock({PostgresSchema.SequencerLockKey});", connection))
        {
            if (await tryLock.ExecuteScalarAsync(stoppingToken) is not true)
            {
                _failures = 0;
                _outage.Succeeded();
                return false;
            }
        }

        try
        {
            connection.Notification += (_, _) => _woken = true;
            await using (var listen = new NpgsqlCommand($"LISTEN {WakeChannel};", connection))
            {
                await listen.ExecuteNonQueryAsync(stoppingToken);
            }

            IsLeader = true;
            _failures = 0;
            _outage.Succeeded();
            logger.LogInformation("This instance is now the sequencer (process {ProcessId}).", Environment.ProcessId);
            while (true)
            {
                _woken = false;
                var stamped = await StampAsync(connection, time, leader: true, stoppingToken);
                if (stamped.Count > 0)
                {
                    // A version is visible when its stamp commits, not when its apply does (the processor records no
                    // lag for batches stamped later).
                    metrics.VisibilityLags(time.GetUtcNow(), stamped.AcceptedAt.OfType<long>());
                    await feed.PublishAsync(stamped.Tenants, stoppingToken);
                }

                if (stamped.Count < MaxPerTick && !_woken)
                {
                    await connection.WaitAsync(interval, stoppingToken);
                }
            }
        }
        finally
        {
            IsLeader = false;
            await ResignAsync(connection);
        }
    }

    // The pool does not reset connections (PostgresPitStore.CreateDataSource): the lock and the LISTEN must go before
    // this one is returned. If that fails on a connection still open, the pool is cleared, which closes the connection
    // when it is returned instead of keeping it with the lock.
    private async Task ResignAsync(NpgsqlConnection connection)
    {
        if (connection.State != ConnectionState.Open)
        {
            return;
        }

        try
        {
            await using var unlock = new NpgsqlCommand(
                $"UNLISTEN *; SELECT pg_advisory_unlock({PostgresSchema.SequencerLockKey});", connection)
            { CommandTimeout = 2 };
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            logger.LogWarning("The sequencer could not release its lock cleanly ({Error}); dropping pooled connections.", ex.GetType().Name);
            dataSource.Clear();
        }
    }
}
