namespace Pit.LoadTest;

/// <summary>
/// Milliseconds in logarithmic buckets (5 % wide, 0.01 ms to about 100 s): constant memory however long a soak runs,
/// safe to record into from many threads, percentiles accurate to one bucket (reported as the bucket's upper edge).
/// </summary>
internal sealed class LatencyHistogram
{
    private const double Smallest = 0.01;
    private const double Growth = 1.05;
    private static readonly double LogGrowth = Math.Log(Growth);
    private readonly long[] _buckets = new long[340];
    private long _count;

    public long Count => Interlocked.Read(ref _count);

    public void Record(double milliseconds)
    {
        var index = milliseconds <= Smallest ? 0 : (int)(Math.Log(milliseconds / Smallest) / LogGrowth) + 1;
        Interlocked.Increment(ref _buckets[Math.Min(index, _buckets.Length - 1)]);
        Interlocked.Increment(ref _count);
    }

    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < _buckets.Length; i++)
        {
            Interlocked.Add(ref _buckets[i], Interlocked.Read(ref other._buckets[i]));
        }

        Interlocked.Add(ref _count, other.Count);
    }

    /// <summary>The value below which a fraction <paramref name="quantile"/> of the recorded ones lie; 0 when empty.</summary>
    public double Percentile(double quantile)
    {
        var count = Count;
        if (count == 0)
        {
            return 0;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(quantile * count));
        long seen = 0;
        for (var i = 0; i < _buckets.Length; i++)
        {
            seen += Interlocked.Read(ref _buckets[i]);
            if (seen >= rank)
            {
                return i == 0 ? Smallest : Smallest * Math.Pow(Growth, i);
            }
        }

        return Smallest * Math.Pow(Growth, _buckets.Length - 1);
    }
}
