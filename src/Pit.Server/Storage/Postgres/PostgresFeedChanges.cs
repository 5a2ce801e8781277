using Npgsql;
using NpgsqlTypes;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// Feed signals across instances: after an apply batch commits, <c>NOTIFY pit_feed</c> with the primary's WAL position
/// and the batch's tenants (<see cref="FeedNotification"/>; <c>*</c> when the tenants would not fit a payload), and
/// wakes this instance's waiters through the <see cref="StandbyReplayGate"/>. Every instance's
/// <see cref="PostgresFeedListener"/> hears it and wakes its own the same way.
/// </summary>
internal sealed class PostgresFeedNotifier(NpgsqlDataSource dataSource, StandbyReplayGate gate, TimeProvider time, ILogger<PostgresFeedNotifier> logger) : IFeedChangeNotifier
{
    private readonly StoreOutageLog _outage = new(logger, "Notifying other instances of applied submissions", time);

    /// <summary>The notification channel.</summary>
    public const string Channel = "pit_feed";

    // PostgreSQL refuses payloads of 8000 bytes or more; tenants are organisation numbers (ASCII), the LSN at most 19 more.
    private const int MaxPayload = 7900;

    public async Task PublishAsync(IReadOnlyCollection<string> tenants, CancellationToken cancellationToken)
    {
        var payload = string.Join(',', tenants);
        if (payload.Length > MaxPayload)
        {
            payload = FeedNotification.AnyTenant;
        }

        NpgsqlLogSequenceNumber? lsn = null;
        try
        {
            lsn = await NotifyAsync(payload, cancellationToken);
            _outage.Succeeded();
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // Waiters on other instances then answer at their timeout; the batch itself is committed. This instance's
            // waiters are woken at once (the LSN is unknown), so they re-run their query.
            _outage.Failed(ex);
        }

        gate.Wake(lsn, tenants);
    }

    /// <summary>
    /// The one NOTIFY. Its LSN is <c>pg_current_wal_lsn()</c> read after the commit that changed the feed returned:
    /// that commit was synchronous (the engine never turns <c>synchronous_commit</c> off for the feed), so the WAL is
    /// written past its commit record, and a standby that has replayed up to this LSN shows it. Returns the LSN.
    /// </summary>
    private async Task<NpgsqlLogSequenceNumber> NotifyAsync(string tenants, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT lsn::text, pg_notify('{Channel}', '{FeedNotification.LsnMark}' || lsn::text || ',' || $1) FROM pg_current_wal_lsn() AS lsn;");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = tenants });
        return NpgsqlLogSequenceNumber.Parse((string)(await command.ExecuteScalarAsync(cancellationToken))!);
    }
}

/// <summary>
/// One dedicated connection per instance that <c>LISTEN</c>s on <see cref="PostgresFeedNotifier.Channel"/> and wakes
/// this instance's waiters per tenant through the <see cref="StandbyReplayGate"/>. On any failure it reconnects with a
/// growing delay; after (re)connecting it wakes every waiter once reads see the primary's WAL position of that moment,
/// since notifications sent while it was not listening are lost. A quiet connection is probed
/// now and then, so a silently dropped one is noticed.
/// </summary>
internal sealed class PostgresFeedListener(
    NpgsqlDataSource dataSource, StandbyReplayGate gate, TimeProvider time, ILogger<PostgresFeedListener> logger) : BackgroundService
{
    private readonly StoreOutageLog _outage = new(logger, "Listening for feed changes (LISTEN)", time);

    private static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(30);

    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Consecutive failed attempts to listen, for the back-off; reset once a LISTEN is in place.
    private int _failures;

    /// <summary>Completes once the first <c>LISTEN</c> is in place (for tests and start-up ordering).</summary>
    public Task Listening => _listening.Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                try
                {
                    await ListenAsync(connection, stoppingToken);
                }
                finally
                {
                    await UnlistenAsync(connection);
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
                    await RetryBackoff.Listen.WaitAsync(_failures, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task ListenAsync(NpgsqlConnection connection, CancellationToken stoppingToken)
    {
        connection.Notification += (_, e) => OnNotification(e.Payload);
        await using (var listen = new NpgsqlCommand($"LISTEN {PostgresFeedNotifier.Channel};", connection))
        {
            await listen.ExecuteNonQueryAsync(stoppingToken);
        }

        // The primary's position, read once the LISTEN above is in place: every change that committed while this
        // instance was not listening is at or below it. The repeated LISTEN after it does nothing but keep LISTEN the
        // last statement pg_stat_activity shows for this connection, by which operators (and tests) find the listener.
        await using (var position = new NpgsqlCommand($"SELECT pg_current_wal_lsn()::text; LISTEN {PostgresFeedNotifier.Channel};", connection))
        {
            gate.Wake(NpgsqlLogSequenceNumber.Parse((string)(await position.ExecuteScalarAsync(stoppingToken))!), null);
        }

        _failures = 0;
        _outage.Succeeded();
        _listening.TrySetResult();
        while (true)
        {
            if (!await connection.WaitAsync(ProbeInterval, stoppingToken))
            {
                await using var probe = new NpgsqlCommand("SELECT 1;", connection);
                await probe.ExecuteScalarAsync(stoppingToken);
            }
        }
    }

    // The pool does not reset connections (PostgresPitStore.CreateDataSource), so a connection that is still usable must
    // stop listening before it goes back: otherwise an idle pooled connection would keep receiving every notification.
    // A broken connection is not returned to the pool, so a failure here needs nothing more.
    private static async Task UnlistenAsync(NpgsqlConnection connection)
    {
        if (connection.State != System.Data.ConnectionState.Open)
        {
            return;
        }

        try
        {
            await using var unlisten = new NpgsqlCommand("UNLISTEN *;", connection) { CommandTimeout = 2 };
            await unlisten.ExecuteNonQueryAsync(CancellationToken.None);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException or TimeoutException)
        {
        }
    }

    private void OnNotification(string payload)
    {
        var notification = FeedNotification.Parse(payload);
        gate.Wake(notification.Lsn, notification.Tenants);
    }
}
