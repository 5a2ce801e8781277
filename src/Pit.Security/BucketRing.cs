namespace Pit.Security;

/// <summary>
/// A ring of per-time-bucket states covering a sliding window: the state of bucket <c>t / width</c> lives in slot
/// <c>(t / width) mod slots</c> and is replaced whole, in O(1), when a later bucket claims the slot. No sweep ever
/// runs; a bucket older than the window is simply overwritten. Each slot has its own lock, held only for the caller's
/// small action, so writers of different buckets never contend.
/// </summary>
/// <typeparam name="T">The state of one bucket.</typeparam>
internal sealed class BucketRing<T>
    where T : class
{
    private readonly Slot[] _slots;
    private readonly Func<T> _create;

    /// <param name="bucketSeconds">Width of one bucket, seconds (at least 1).</param>
    /// <param name="windowSeconds">How far apart, in seconds, the oldest and newest live timestamps may be.</param>
    /// <param name="create">Makes the empty state of a new bucket.</param>
    public BucketRing(int bucketSeconds, int windowSeconds, Func<T> create)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bucketSeconds, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSeconds, 1);
        BucketSeconds = bucketSeconds;

        // One slot per bucket the window can touch, plus one so a live bucket is never overwritten by a newer one.
        _slots = new Slot[(windowSeconds + bucketSeconds - 1) / bucketSeconds + 2];
        for (var i = 0; i < _slots.Length; i++)
        {
            _slots[i] = new Slot();
        }

        _create = create;
    }

    /// <summary>Width of one bucket, seconds.</summary>
    public int BucketSeconds { get; }

    /// <summary>How many buckets the ring holds at most: the memory bound is this times one bucket's bound.</summary>
    public int SlotCount => _slots.Length;

    /// <summary>The bucket a unix timestamp (seconds) falls in.</summary>
    public long BucketOf(long seconds) => Math.DivRem(seconds, BucketSeconds) is var (q, r) && r < 0 ? q - 1 : q;

    /// <summary>Seconds from <paramref name="nowSeconds"/> until the bucket of <paramref name="seconds"/> ends (at least 1).</summary>
    public int SecondsUntilBucketEnds(long seconds, long nowSeconds) => (int)Math.Max(1, ((BucketOf(seconds) + 1) * BucketSeconds) - nowSeconds);

    /// <summary>
    /// Runs <paramref name="action"/> on the state of the bucket of <paramref name="seconds"/> under that slot's lock,
    /// starting a fresh state when the slot still holds an older bucket. Returns false, without running the action,
    /// when the slot already holds a newer bucket: the timestamp is older than the window.
    /// </summary>
    public bool TryUpdate<TState, TResult>(long seconds, TState state, Func<T, TState, TResult> action, out TResult result)
    {
        var bucket = BucketOf(seconds);
        var slot = _slots[(int)(((bucket % _slots.Length) + _slots.Length) % _slots.Length)];
        lock (slot.Gate)
        {
            if (slot.Bucket > bucket)
            {
                result = default!;
                return false;
            }

            if (slot.Bucket < bucket || slot.State is null)
            {
                slot.Bucket = bucket;
                slot.State = _create();
            }

            result = action(slot.State, state);
            return true;
        }
    }

    /// <summary>
    /// Adds up <paramref name="measure"/> over every slot's state, one slot lock at a time (for gauges, not the hot path).
    /// Counts what is held in memory, including buckets that have left the window but are not overwritten yet.
    /// </summary>
    public long Sum(Func<T, long> measure)
    {
        long total = 0;
        foreach (var slot in _slots)
        {
            lock (slot.Gate)
            {
                total += slot.State is null ? 0 : measure(slot.State);
            }
        }

        return total;
    }

    private sealed class Slot
    {
        public readonly Lock Gate = new();
        public long Bucket = long.MinValue;
        public T? State;
    }
}
