using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>
/// Remembers DPoP proofs seen within the <c>iat</c> window so a proof is accepted once. Shared across instances
/// when backed by a shared store.
/// </summary>
public interface IDpopReplayCache
{
    /// <summary>
    /// Records <paramref name="key"/> (a hash of jkt and jti) until <paramref name="expiresAt"/>. Returns false when
    /// the key is already recorded, or when the cache is full of live entries (it fails closed). Throws
    /// <see cref="ReplayCacheUnavailableException"/> when its store cannot be reached: the request is then refused with
    /// 503 (the client is not at fault and may retry), never accepted unrecorded.
    /// </summary>
    ValueTask<bool> TryAddAsync(string key, DateTimeOffset expiresAt, CancellationToken cancellationToken);
}

/// <summary>The replay cache's store cannot be reached, so no proof can be accepted right now.</summary>
public sealed class ReplayCacheUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>Per-process replay cache bounded by <see cref="DpopOptions.ReplayCacheCapacity"/>.</summary>
internal sealed partial class InMemoryDpopReplayCache(IOptions<PitAuthOptions> options, TimeProvider time, ILogger<InMemoryDpopReplayCache> logger)
    : IDpopReplayCache, Telemetry.IReplayCacheStatistics
{
    private readonly ConcurrentDictionary<string, long> _entries = new(StringComparer.Ordinal);
    private readonly int _capacity = Math.Max(16, options.Value.DPoP.ReplayCacheCapacity);
    private readonly Lock _sweepLock = new();

    // ConcurrentDictionary.Count takes every bucket lock; an approximate counter keeps the hot path lock-free.
    private int _count;

    internal int Count => _entries.Count;

    long Telemetry.IReplayCacheStatistics.Entries => Volatile.Read(ref _count);

    public ValueTask<bool> TryAddAsync(string key, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        if (Volatile.Read(ref _count) >= _capacity)
        {
            Sweep(now);
            if (Volatile.Read(ref _count) >= _capacity)
            {
                LogFull(logger, _capacity);
                return ValueTask.FromResult(false);
            }
        }

        var expiry = expiresAt.ToUnixTimeMilliseconds();
        if (_entries.TryAdd(key, expiry))
        {
            Interlocked.Increment(ref _count);
            return ValueTask.FromResult(true);
        }

        // An entry that outlived its window no longer counts as a replay.
        var added = _entries.TryGetValue(key, out var existing) && existing < now && _entries.TryUpdate(key, expiry, existing);
        return ValueTask.FromResult(added);
    }

    private void Sweep(long now)
    {
        lock (_sweepLock)
        {
            foreach (var (key, expiry) in _entries)
            {
                if (expiry < now && _entries.TryRemove(new KeyValuePair<string, long>(key, expiry)))
                {
                    Interlocked.Decrement(ref _count);
                }
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "DPoP replay cache is full ({Capacity} live entries); refusing proofs until entries expire")]
    private static partial void LogFull(ILogger logger, int capacity);
}
