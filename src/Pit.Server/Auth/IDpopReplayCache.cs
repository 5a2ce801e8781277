using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>
/// Remembers DPoP proofs seen within the <c>iat</c> window so a proof is accepted once. Shared across instances
/// when backed by a shared store. Fairness between clients is not its concern: <see cref="DpopReplayShares"/> sits in
/// front of whichever cache is registered.
/// </summary>
internal interface IDpopReplayCache
{
    /// <summary>
    /// Records <paramref name="entry"/>. Returns false only when the same key was already recorded within the window
    /// (a replay). Throws <see cref="ReplayCacheUnavailableException"/> when its store cannot be reached or it cannot
    /// record: the request is then refused with 503 (the client is not at fault and may retry), never accepted
    /// unrecorded.
    /// </summary>
    ValueTask<bool> TryAddAsync(DpopReplayEntry entry, CancellationToken cancellationToken);
}

/// <summary>One proof as the replay cache sees it.</summary>
/// <param name="Key">A 16-byte hash of the proof key's thumbprint and the proof's <c>jti</c>.</param>
/// <param name="IssuedAt">The proof's <c>iat</c>, unix seconds.</param>
/// <param name="ExpiresAt">When the proof leaves the accepted window, unix seconds.</param>
internal readonly record struct DpopReplayEntry(UInt128 Key, long IssuedAt, long ExpiresAt)
{
    /// <summary>The key of proof <paramref name="jti"/> made with the key whose thumbprint is <paramref name="jkt"/>.</summary>
    public static UInt128 KeyOf(string jkt, string jti)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(jkt + "\n" + jti), hash);
        return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(hash), BinaryPrimitives.ReadUInt64BigEndian(hash[8..]));
    }
}

/// <summary>The replay cache's store cannot be reached, so no proof can be accepted right now.</summary>
internal sealed class ReplayCacheUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Per-process replay cache: 16-byte keys in sets per 5-second bucket of <c>iat</c>, each bucket dropped whole once
/// it is older than the window (O(1) expiry, no sweep). Bound: (window / 5 s + 2) buckets of
/// <see cref="DpopOptions.ReplayCacheProofsPerSecond"/> × 5 keys each; with the defaults (66-s window, 20 000 proofs/s)
/// 16 × 100 000 = 1.6 million keys, about 30–60 bytes each (docs/PERFORMANCE.md has the measured figure), so at most
/// roughly 100 MB, reached only at a sustained 20 000 proofs/s. <see cref="DpopReplayShares"/> in front refuses a
/// bucket's excess with 429 before it reaches this cache; each bucket has <see cref="Headroom"/> keys more than that for
/// requests checked at the same instant, so a full bucket here is a defect and fails closed (503).
/// </summary>
internal sealed class InMemoryDpopReplayCache(IOptions<PitAuthOptions> options) : IDpopReplayCache, Telemetry.IReplayCacheStatistics
{
    /// <summary>Width of one <c>iat</c> bucket, seconds.</summary>
    public const int BucketSeconds = 5;

    /// <summary>Keys per bucket beyond the shares' total, for requests in flight at once.</summary>
    public const int Headroom = 4096;

    private readonly TimeBucketedSet _set = new(BucketSeconds, WindowSeconds(options.Value.DPoP), BucketCapacity(options.Value.DPoP) + Headroom);

    /// <summary>Most keys held at any time.</summary>
    public long MaxEntries => _set.MaxEntries;

    long Telemetry.IReplayCacheStatistics.Entries => _set.Count;

    long Telemetry.IReplayCacheStatistics.Capacity => MaxEntries;

    /// <summary>The span of accepted <c>iat</c> values, seconds.</summary>
    public static int WindowSeconds(DpopOptions dpop) => dpop.MaxAgeSeconds + dpop.MaxFutureSeconds + 1;

    /// <summary>Most proofs one bucket holds: the configured rate over one bucket.</summary>
    public static int BucketCapacity(DpopOptions dpop) => checked(dpop.ReplayCacheProofsPerSecond * BucketSeconds);

    public ValueTask<bool> TryAddAsync(DpopReplayEntry entry, CancellationToken cancellationToken) =>
        _set.TryAdd(entry.Key, entry.IssuedAt) switch
        {
            TimeBucketedSetResult.Added => ValueTask.FromResult(true),
            TimeBucketedSetResult.Full => throw new ReplayCacheUnavailableException("The in-memory DPoP replay cache bucket is full."),
            _ => ValueTask.FromResult(false),
        };
}
