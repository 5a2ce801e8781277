namespace Pit.Security;

/// <summary>What <see cref="TimeBucketedSet.TryAdd"/> decided.</summary>
internal enum TimeBucketedSetResult
{
    /// <summary>The key was new and is now recorded.</summary>
    Added,

    /// <summary>The key was already recorded in its bucket.</summary>
    Seen,

    /// <summary>The bucket holds its maximum number of keys; nothing was recorded.</summary>
    Full,

    /// <summary>The timestamp is older than the window; nothing was recorded.</summary>
    Expired,
}

/// <summary>
/// A replay set: 16-byte keys grouped by the time bucket of their timestamp, each bucket dropped whole once it is older
/// than the window (see <see cref="BucketRing{T}"/>). A key is "seen" only within its own bucket, which is what a
/// replayed message (same timestamp, same key) hits. Memory: at most <see cref="MaxEntries"/> keys.
/// </summary>
internal sealed class TimeBucketedSet
{
    private readonly BucketRing<HashSet<UInt128>> _ring;

    /// <param name="bucketSeconds">Bucket width, seconds.</param>
    /// <param name="windowSeconds">Span of accepted timestamps, seconds.</param>
    /// <param name="bucketCapacity">Most keys one bucket holds.</param>
    public TimeBucketedSet(int bucketSeconds, int windowSeconds, int bucketCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketCapacity, 1);
        BucketCapacity = bucketCapacity;
        _ring = new BucketRing<HashSet<UInt128>>(bucketSeconds, windowSeconds, static () => []);
    }

    /// <summary>Most keys one bucket holds.</summary>
    public int BucketCapacity { get; }

    /// <summary>The bound on keys held at any time: buckets in the ring times <see cref="BucketCapacity"/>.</summary>
    public long MaxEntries => (long)_ring.SlotCount * BucketCapacity;

    /// <summary>Keys held now, buckets past the window included until they are overwritten.</summary>
    public long Count => _ring.Sum(static set => set.Count);

    /// <summary>Records <paramref name="key"/> in the bucket of <paramref name="timestampSeconds"/> (unix seconds).</summary>
    public TimeBucketedSetResult TryAdd(UInt128 key, long timestampSeconds)
    {
        var updated = _ring.TryUpdate(timestampSeconds, (Key: key, Capacity: BucketCapacity), static (set, s) =>
        {
            if (set.Contains(s.Key))
            {
                return TimeBucketedSetResult.Seen;
            }

            if (set.Count >= s.Capacity)
            {
                return TimeBucketedSetResult.Full;
            }

            set.Add(s.Key);
            return TimeBucketedSetResult.Added;
        }, out var result);
        return updated ? result : TimeBucketedSetResult.Expired;
    }
}
