using Npgsql;
using Pit.Server.Auth;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The DPoP replay cache shared by every instance over one PostgreSQL database: one row per proof (the validator's
/// hash of jkt and jti) with its expiry. Exactly one insert wins a key, so a proof accepted by one instance is
/// refused by every other. A row past its expiry counts as free; <see cref="PostgresDpopReplayCleanup"/> sweeps them.
/// <para>
/// Each insert commits with <c>synchronous_commit = off</c>: the row is visible to every instance at once, but the
/// request does not wait for a disk flush. A database crash can forget the last fraction of a second of proofs,
/// which could then be replayed only until they expire (the <c>iat</c> window); that is the price of keeping an
/// fsync off every authenticated request.
/// </para>
/// </summary>
internal sealed partial class PostgresDpopReplayCache(NpgsqlDataSource dataSource, TimeProvider time, ILogger<PostgresDpopReplayCache> logger)
    : IDpopReplayCache
{
    public async ValueTask<bool> TryAddAsync(string key, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        try
        {
            try
            {
                return await TryAddOnceAsync(key, expiresAt, cancellationToken);
            }
            catch (NpgsqlException ex) when (ex.IsTransient && !cancellationToken.IsCancellationRequested)
            {
                // Most often a pooled connection the server dropped (restart, failover): once more on a fresh one.
                // Should the lost attempt have committed, the retry finds its row and refuses: failing closed.
                dataSource.Clear();
                return await TryAddOnceAsync(key, expiresAt, cancellationToken);
            }
        }
        catch (NpgsqlException ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Fail closed: a proof that cannot be recorded is not accepted (the request is answered 503).
            LogUnavailable(logger, ex);
            throw new ReplayCacheUnavailableException("The DPoP replay cache cannot be reached.", ex);
        }
    }

    private async Task<bool> TryAddOnceAsync(string key, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        var insert = new NpgsqlBatchCommand("""
            INSERT INTO dpop_replay (key, expires_at) VALUES ($1, $2)
            ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_replay.expires_at < $3;
            """);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = key });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = expiresAt.ToUnixTimeMilliseconds() });
        insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = time.GetUtcNow().ToUnixTimeMilliseconds() });
        await using (var batch = new NpgsqlBatch(connection, tx) { BatchCommands = { new("SET LOCAL synchronous_commit = off;"), insert } })
        {
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }

        await tx.CommitAsync(cancellationToken);
        return insert.RecordsAffected == 1;
    }

    /// <summary>Deletes up to <paramref name="limit"/> expired entries and returns how many it deleted.</summary>
    public async Task<int> RemoveExpiredAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            DELETE FROM dpop_replay WHERE key IN (SELECT key FROM dpop_replay WHERE expires_at < $1 LIMIT $2);
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = time.GetUtcNow().ToUnixTimeMilliseconds() });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The DPoP replay cache in PostgreSQL cannot be reached; refusing the proof")]
    private static partial void LogUnavailable(ILogger logger, Exception exception);
}

/// <summary>
/// Sweeps expired replay-cache entries once a minute, in chunks so no single statement grows large. Every instance
/// runs one; several sweeping at once is harmless.
/// </summary>
internal sealed partial class PostgresDpopReplayCleanup(PostgresDpopReplayCache cache, TimeProvider time, ILogger<PostgresDpopReplayCleanup> logger)
    : BackgroundService
{
    private const int Chunk = 10_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    while (await cache.RemoveExpiredAsync(Chunk, stoppingToken) == Chunk)
                    {
                    }
                }
                catch (NpgsqlException ex)
                {
                    LogSweepFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeping expired DPoP replay entries failed; trying again in a minute")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
