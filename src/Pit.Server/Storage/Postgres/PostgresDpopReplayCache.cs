using System.Buffers.Binary;
using System.Threading.Channels;
using Npgsql;
using Pit.Server.Auth;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The DPoP replay cache shared by every instance over one PostgreSQL database. Requests hand their proof's key to
/// one writer loop, which inserts whatever has queued up (up to <see cref="MaxBatch"/>) with one statement,
/// <c>INSERT ... SELECT FROM unnest(...) ON CONFLICT ... RETURNING key</c>: one round trip serves many proofs, and each
/// request learns from the returned keys whether its own proof was new. Exactly one insert wins a key, so a proof
/// accepted by one instance is refused by every other.
/// <para>
/// The table is UNLOGGED: it writes no WAL, so no request waits for a flush, and a database crash empties it. That
/// forgets at most one <c>iat</c> window of proofs, which could then be replayed only until they leave the window.
/// A row past its expiry counts as free; <see cref="PostgresDpopReplayCleanup"/> deletes them in batches.
/// </para>
/// Bound: at most <see cref="QueueCapacity"/> proofs wait for the writer; further requests wait for room.
/// </summary>
internal sealed class PostgresDpopReplayCache : IDpopReplayCache, IAsyncDisposable
{
    /// <summary>Most proofs one statement inserts.</summary>
    public const int MaxBatch = 512;

    /// <summary>Most proofs waiting for the writer.</summary>
    public const int QueueCapacity = 8192;

    private const string InsertSql = """
        INSERT INTO dpop_replay_keys (key, expires_at)
        SELECT * FROM unnest($1::uuid[], $2::bigint[])
        ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_replay_keys.expires_at < $3
        RETURNING key;
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly StoreOutageLog _outage;
    private readonly Channel<Pending> _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(QueueCapacity)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly Task _writer;

    public PostgresDpopReplayCache(NpgsqlDataSource dataSource, TimeProvider time, ILogger<PostgresDpopReplayCache> logger)
    {
        _dataSource = dataSource;
        _time = time;
        _outage = new(logger, "Recording DPoP proofs against replay (their requests are answered 503)", time);
        _writer = Task.Run(WriteLoopAsync);
    }

    public async ValueTask<bool> TryAddAsync(DpopReplayEntry entry, CancellationToken cancellationToken)
    {
        var pending = new Pending(ToGuid(entry.Key), entry.ExpiresAt);
        try
        {
            await _queue.Writer.WriteAsync(pending, cancellationToken);
        }
        catch (ChannelClosedException ex)
        {
            throw new ReplayCacheUnavailableException("The DPoP replay cache is shutting down.", ex);
        }

        return await pending.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Deletes up to <paramref name="limit"/> expired entries and returns how many it deleted.</summary>
    public async Task<int> RemoveExpiredAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            DELETE FROM dpop_replay_keys WHERE key IN (SELECT key FROM dpop_replay_keys WHERE expires_at < $1 LIMIT $2);
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = _time.GetUtcNow().ToUnixTimeSeconds() });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _writer;
    }

    private async Task WriteLoopAsync()
    {
        var batch = new Dictionary<Guid, Pending>(MaxBatch);
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                // The same proof twice in one batch: the second is a replay of the first.
                if (!batch.TryAdd(item.Key, item))
                {
                    item.Completion.TrySetResult(false);
                }
            }

            try
            {
                var inserted = await InsertWithRetryAsync(batch.Values);
                _outage.Succeeded();
                foreach (var (key, item) in batch)
                {
                    item.Completion.TrySetResult(inserted.Contains(key));
                }
            }
            catch (Exception ex)
            {
                // Fail closed: a proof that cannot be recorded is not accepted (the request is answered 503).
                _outage.Failed(ex);
                var failure = new ReplayCacheUnavailableException("The DPoP replay cache cannot be reached.", ex);
                foreach (var item in batch.Values)
                {
                    item.Completion.TrySetException(failure);
                }
            }

            batch.Clear();
        }
    }

    // Should a lost attempt have landed, the second finds its rows and refuses them: failing closed.
    private Task<HashSet<Guid>> InsertWithRetryAsync(ICollection<Pending> items) =>
        _dataSource.OnceMoreOnFreshConnectionAsync(_ => InsertAsync(items), CancellationToken.None);

    private async Task<HashSet<Guid>> InsertAsync(ICollection<Pending> items)
    {
        await using var command = _dataSource.CreateCommand(InsertSql);
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. items.Select(i => i.Key)] });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. items.Select(i => i.ExpiresAt)] });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = _time.GetUtcNow().ToUnixTimeSeconds() });
        var inserted = new HashSet<Guid>(items.Count);
        await using var reader = await command.ExecuteReaderAsync(CancellationToken.None);
        while (await reader.ReadAsync(CancellationToken.None))
        {
            inserted.Add(reader.GetGuid(0));
        }

        return inserted;
    }

    private static Guid ToGuid(UInt128 key)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, key);
        return new Guid(bytes, bigEndian: true);
    }


    private sealed class Pending(Guid key, long expiresAt)
    {
        public Guid Key { get; } = key;

        public long ExpiresAt { get; } = expiresAt;

        public TaskCompletionSource<bool> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>
/// Deletes expired replay-cache entries every 30 seconds, in chunks so no single statement grows large. Every
/// instance runs one; several at once is harmless.
/// </summary>
internal sealed class PostgresDpopReplayCleanup(PostgresDpopReplayCache cache, TimeProvider time, ILogger<PostgresDpopReplayCleanup> logger)
    : BackgroundService
{
    private const int Chunk = 10_000;

    private readonly StoreOutageLog _outage = new(logger, "Deleting expired DPoP replay entries (every 30 s)", time);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(30), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    while (await cache.RemoveExpiredAsync(Chunk, stoppingToken) == Chunk)
                    {
                    }

                    _outage.Succeeded();
                }
                catch (NpgsqlException ex)
                {
                    _outage.Failed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

}
