using Npgsql;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// Feed signals across instances: after an apply batch commits, <c>NOTIFY pit_feed</c> with the batch's tenants
/// (comma separated; <c>*</c> when they would not fit a payload), and wakes this instance's waiters at once. Every
/// instance's <see cref="PostgresFeedListener"/> hears it and wakes its own.
/// </summary>
internal sealed class PostgresFeedNotifier(NpgsqlDataSource dataSource, FeedChangeHub hub, TimeProvider time, ILogger<PostgresFeedNotifier> logger) : IFeedChangeNotifier
{
    private readonly StoreOutageLog _outage = new(logger, "Notifying other instances of applied submissions", time);

    /// <summary>The notification channel.</summary>
    public const string Channel = "pit_feed";

    /// <summary>Payload meaning "any tenant".</summary>
    public const string AnyTenant = "*";

    // PostgreSQL refuses payloads of 8000 bytes or more; tenants are organisation numbers (ASCII).
    private const int MaxPayload = 7900;

    public async Task PublishAsync(IReadOnlyCollection<string> tenants, CancellationToken cancellationToken)
    {
        hub.Wake(tenants);
        var payload = string.Join(',', tenants);
        if (payload.Length > MaxPayload)
        {
            payload = AnyTenant;
        }

        try
        {
            await using var command = dataSource.CreateCommand($"SELECT pg_notify('{Channel}', $1);");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
            await command.ExecuteNonQueryAsync(cancellationToken);
            _outage.Succeeded();
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            // Waiters on other instances then answer at their timeout; the batch itself is committed.
            _outage.Failed(ex);
        }
    }

}

/// <summary>
/// One dedicated connection per instance that <c>LISTEN</c>s on <see cref="PostgresFeedNotifier.Channel"/> and wakes
/// this instance's waiters per tenant. On any failure it reconnects with a growing delay; after (re)connecting it
/// wakes every waiter, since notifications sent while it was not listening are lost. A quiet connection is probed
/// now and then, so a silently dropped one is noticed.
/// </summary>
internal sealed class PostgresFeedListener(
    NpgsqlDataSource dataSource, FeedChangeHub hub, TimeProvider time, ILogger<PostgresFeedListener> logger) : BackgroundService
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

        _failures = 0;
        _outage.Succeeded();
        hub.WakeAll();
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
        if (payload == PostgresFeedNotifier.AnyTenant)
        {
            hub.WakeAll();
        }
        else
        {
            hub.Wake(payload.Split(',', StringSplitOptions.RemoveEmptyEntries));
        }
    }

}
