namespace Pit.Server.Storage;

/// <summary>
/// The one retry policy of the loops that retry store work until it succeeds, on either engine (apply, audit writes, the sequencer,
/// PostgreSQL's <c>LISTEN</c>): wait <see cref="First"/> after the first failure,
/// twice as long after each further one, never longer than <see cref="Max"/>. Doubling keeps a long outage from
/// costing the store a retry every few hundred milliseconds from every instance, and the cap bounds how long a
/// recovered store waits to be used again. Each loop keeps its own count of failures and logs through
/// <see cref="StoreOutageLog"/>.
/// </summary>
internal sealed record RetryBackoff
{
    /// <summary>The submission processor's apply loop: 200 ms doubling to 30 s.</summary>
    public static RetryBackoff Apply { get; } = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(30));

    /// <summary>The audit trail's writes: 200 ms doubling to 5 s, so held entries are written soon after recovery.</summary>
    public static RetryBackoff AuditWrites { get; } = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));

    /// <summary>PostgreSQL's <c>LISTEN</c> connection: 200 ms doubling to 10 s (long polls fall back to polling meanwhile).</summary>
    public static RetryBackoff Listen { get; } = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));

    /// <summary>PostgreSQL's sequencer after a failed tick or lead attempt: 200 ms doubling to 10 s.</summary>
    public static RetryBackoff Sequencer { get; } = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10));

    public RetryBackoff(TimeSpan first, TimeSpan max)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(first, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, first);
        First = first;
        Max = max;
    }

    /// <summary>The wait after the first failure.</summary>
    public TimeSpan First { get; }

    /// <summary>The longest wait.</summary>
    public TimeSpan Max { get; }

    /// <summary>The wait after <paramref name="failures"/> failures in a row (at least one): First × 2^(failures − 1), at most Max.</summary>
    public TimeSpan DelayAfter(int failures)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failures, 1);

        // In doubles, so no count of failures can overflow; First.Ticks × a power of two is exact below 2^53 ticks.
        var ticks = First.Ticks * Math.Pow(2, Math.Min(failures - 1, 64));
        return ticks >= Max.Ticks ? Max : TimeSpan.FromTicks((long)ticks);
    }

    /// <summary>Waits <see cref="DelayAfter"/>(<paramref name="failures"/>) on <paramref name="time"/>'s clock.</summary>
    public Task WaitAsync(int failures, TimeProvider time, CancellationToken cancellationToken) =>
        Task.Delay(DelayAfter(failures), time, cancellationToken);
}
