namespace Pit.Server.Storage;

/// <summary>
/// What operators need to see of the submission queue: how long it is and how old its head is. Implemented by the
/// engines beside <see cref="IPitStore"/>; consumers treat a store without it as "no statistics".
/// </summary>
public interface IQueueStatistics
{
    /// <summary>Queued (not yet processed) submissions and the acceptance time of the oldest.</summary>
    Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken);

    /// <summary>The next <paramref name="maxCount"/> queued submissions in acceptance order, as the processor will take them.</summary>
    Task<IReadOnlyList<QueuedSubmission>> PeekQueuedAsync(int maxCount, CancellationToken cancellationToken);
}

/// <summary>The queue's length and the acceptance time (microseconds since the epoch) of its oldest entry, if any.</summary>
public readonly record struct QueueStatistics(long Depth, long? OldestAcceptedAt);

/// <summary>A queued submission's id and acceptance time (microseconds since the epoch).</summary>
public readonly record struct QueuedSubmission(Guid Id, long AcceptedAt);
