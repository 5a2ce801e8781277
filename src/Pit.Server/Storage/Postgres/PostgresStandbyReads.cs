using System.Threading.Channels;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The connection pool that GET pages and reads by id use: a second pool for <c>Pit:Storage:ReadConnectionString</c>
/// (a streaming standby), or the primary's own pool when that is empty. Writes, the apply loop, the replay cache,
/// audit, secrets, migrations and <c>LISTEN</c> never use it.
/// </summary>
internal sealed class PostgresReadSource : IAsyncDisposable
{
    public PostgresReadSource(NpgsqlDataSource primary, PostgresStoreOptions options)
    {
        IsStandby = options.HasReadConnection;
        DataSource = IsStandby ? PostgresPitStore.CreateDataSource(options.ReadConnectionString!, "pit-server-reads") : primary;
    }

    /// <summary>The pool reads go through.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>Whether reads have a connection of their own, which may lag behind the primary.</summary>
    public bool IsStandby { get; }

    public ValueTask DisposeAsync() => IsStandby ? DataSource.DisposeAsync() : ValueTask.CompletedTask;
}

/// <summary>
/// Readiness of the read connection (<c>store-reads</c> in <c>/health/ready</c>), registered only when
/// <c>Pit:Storage:ReadConnectionString</c> is set. GET pages and reads by id go there alone, so a standby that cannot be
/// reached, or that lacks the schema (a standby of another database), fails every read with 503 while POSTs still
/// work: the instance is not ready, as it is when the primary cannot be reached. A standby that was promoted still
/// serves reads and stays ready; <c>data.inRecovery</c> says which it is. Lag is not judged here (stale reads are
/// correct reads); it is watched on the standby (docs/OPERATIONS.md).
/// </summary>
internal sealed class StandbyReadsHealthCheck(PostgresReadSource reads) : IHealthCheck
{
    // A real round trip on the read pool (a pooled connection to a restarted standby fails here, not on open), through
    // a table every read needs.
    private const string CheckSql = "SELECT pg_is_in_recovery(), (SELECT count(*) FROM schema_migrations);";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        StoreProbe.RunAsync(async timeout =>
        {
            var inRecovery = await reads.DataSource.OnceMoreOnFreshConnectionAsync(async ct =>
            {
                await using var command = reads.DataSource.CreateCommand(CheckSql);
                await using var reader = await command.ExecuteReaderAsync(ct);
                await reader.ReadAsync(ct);
                return reader.GetBoolean(0);
            }, timeout);
            return HealthCheckResult.Healthy(
                inRecovery ? "Reads go to a standby." : "Reads go to a server that is not in recovery (a promoted standby or a primary).",
                new Dictionary<string, object> { ["inRecovery"] = inRecovery });
        }, "The read connection (Pit:Storage:ReadConnectionString) cannot be used: GET pages and reads by id fail.", cancellationToken);
}

/// <summary>
/// What a <c>pit_feed</c> notification says: the primary's WAL position at or after the commit that changed the feed,
/// and the tenants whose feeds changed (null: any tenant). The payload is <c>@LSN,tenant,tenant,...</c> (or
/// <c>@LSN,*</c>). An instance of an earlier version sends tenants only, without <c>@LSN</c>; and it reads the LSN as one
/// more tenant, one that no waiter has, so it still wakes the named tenants' waiters during a rolling upgrade.
/// </summary>
internal readonly record struct FeedNotification(NpgsqlLogSequenceNumber? Lsn, IReadOnlyCollection<string>? Tenants)
{
    /// <summary>Tenants meaning "any tenant".</summary>
    public const string AnyTenant = "*";

    /// <summary>What precedes the LSN in a payload.</summary>
    public const string LsnMark = "@";

    public static FeedNotification Parse(string payload)
    {
        NpgsqlLogSequenceNumber? lsn = null;
        var tenants = new List<string>();
        var any = false;
        foreach (var part in payload.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part.StartsWith(LsnMark, StringComparison.Ordinal))
            {
                lsn = NpgsqlLogSequenceNumber.TryParse(part.AsSpan(LsnMark.Length), out var parsed) ? parsed : null;
            }
            else if (part == AnyTenant)
            {
                any = true;
            }
            else
            {
                tenants.Add(part);
            }
        }

        return new(lsn, any ? null : tenants);
    }
}

/// <summary>
/// Wakes this instance's long-poll waiters only once their reads can see the change that woke them. With reads on the
/// primary that is at once. With reads on a standby, a change waits until the standby's <c>pg_last_wal_replay_lsn()</c>
/// has reached the change's LSN: one poller per instance asks the standby (every
/// <see cref="PostgresStoreOptions.StandbyPollInterval"/>, only while something waits), whatever the number of
/// waiters. Waiting changes are bounded (<see cref="MaxWaiting"/>: beyond it they merge into one for every tenant at the
/// highest LSN) and so is their wait (<see cref="PostgresStoreOptions.StandbyWaitTimeout"/>: then their waiters are
/// woken anyway and read what the standby has, a prefix of the feed).
/// </summary>
internal sealed class StandbyReplayGate(
    FeedChangeHub hub, PostgresReadSource reads, IOptions<PostgresStoreOptions> options, TimeProvider time, ILogger<StandbyReplayGate> logger)
    : BackgroundService
{
    /// <summary>Changes kept waiting for the standby at most; more merge into one.</summary>
    public const int MaxWaiting = 1024;

    private readonly StoreOutageLog _outage = new(logger, "Reading the standby's replay position", time);
    private readonly Lock _lock = new();
    private readonly List<WaitingChange> _waiting = [];
    private readonly Channel<bool> _arrived = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private NpgsqlLogSequenceNumber _replayed;

    /// <summary>Changes waiting for the standby now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>
    /// Wakes the waiters of <paramref name="tenants"/> (null: of every tenant) once reads see <paramref name="lsn"/>;
    /// at once when reads are on the primary or the LSN is unknown (a notification from an earlier version).
    /// </summary>
    public void Wake(NpgsqlLogSequenceNumber? lsn, IReadOnlyCollection<string>? tenants)
    {
        if (reads.IsStandby && lsn is { } position)
        {
            lock (_lock)
            {
                if (position > _replayed)
                {
                    if (_waiting.Count >= MaxWaiting)
                    {
                        var highest = _waiting.Max(w => w.Lsn);
                        var oldest = _waiting.Min(w => w.Since);
                        _waiting.Clear();
                        _waiting.Add(new WaitingChange(highest > position ? highest : position, null, oldest));
                    }
                    else
                    {
                        _waiting.Add(new WaitingChange(position, tenants, time.GetTimestamp()));
                    }

                    _arrived.Writer.TryWrite(true);
                    return;
                }
            }
        }

        WakeNow(tenants);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!reads.IsStandby)
        {
            return;
        }

        var interval = options.Value.StandbyPollInterval;
        try
        {
            while (await _arrived.Reader.WaitToReadAsync(stoppingToken))
            {
                _arrived.Reader.TryRead(out _);
                while (Waiting > 0)
                {
                    Release(await ReplayedAsync(stoppingToken));
                    if (Waiting > 0)
                    {
                        await Task.Delay(interval, time, stoppingToken);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// The standby's replay position; null when every change can be read: the read connection is on a primary (no
    /// replay: a multi-host string that found no standby, or a promoted standby, whose
    /// <c>pg_last_wal_replay_lsn()</c> would stay at its last replayed record), or it cannot be asked (its reads fail
    /// just the same, so holding waiters would only delay their answer).
    /// </summary>
    private async Task<NpgsqlLogSequenceNumber?> ReplayedAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var command = reads.DataSource.CreateCommand("SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END;");
            command.CommandTimeout = 5;
            var replayed = await command.ExecuteScalarAsync(cancellationToken);
            _outage.Succeeded();
            return replayed is string text && NpgsqlLogSequenceNumber.TryParse(text, out var lsn) ? lsn : null;
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            _outage.Failed(ex);
            return null;
        }
    }

    private void Release(NpgsqlLogSequenceNumber? replayed)
    {
        var timeout = options.Value.StandbyWaitTimeout;
        List<WaitingChange> released = [];
        var expired = 0;
        lock (_lock)
        {
            if (replayed is { } position && position > _replayed)
            {
                _replayed = position;
            }

            for (var i = _waiting.Count - 1; i >= 0; i--)
            {
                var change = _waiting[i];
                var late = time.GetElapsedTime(change.Since) >= timeout;
                if (replayed is null || change.Lsn <= _replayed || late)
                {
                    released.Add(change);
                    _waiting.RemoveAt(i);
                    expired += late && replayed is not null && change.Lsn > _replayed ? 1 : 0;
                }
            }
        }

        if (expired > 0)
        {
            logger.LogWarning("The read standby has not replayed {Changes} feed change(s) within {Timeout}; their waiters read what it has.", expired, timeout);
        }

        foreach (var change in released)
        {
            WakeNow(change.Tenants);
        }
    }

    private void WakeNow(IReadOnlyCollection<string>? tenants)
    {
        if (tenants is null)
        {
            hub.WakeAll();
        }
        else
        {
            hub.Wake(tenants);
        }
    }

    private sealed record WaitingChange(NpgsqlLogSequenceNumber Lsn, IReadOnlyCollection<string>? Tenants, long Since);
}
