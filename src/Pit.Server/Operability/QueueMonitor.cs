using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Pit.Server.Audit;
using Pit.Server.Auth;
using Pit.Server.Feed;
using Pit.Server.Storage;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;

namespace Pit.Server.Operability;

/// <summary>Options of section <c>Pit:Health</c>.</summary>
internal sealed class HealthOptions
{
    /// <summary>
    /// <c>/health/ready</c> fails when the oldest queued submission is older than this (default 5 minutes): the
    /// processor is stuck or far behind.
    /// </summary>
    public TimeSpan MaxQueueAge { get; set; } = TimeSpan.FromMinutes(5);
}

/// <summary>
/// Reads the queue's statistics from the store (when it offers them): fresh for the readiness check, and at most
/// once a second for the observable gauges, which are read synchronously by the exporters.
/// </summary>
internal sealed class QueueMonitor(ISubmissionQueueStore store, TimeProvider time)
{
    private static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private (QueueStatistics Value, DateTimeOffset At)? _sample;

    /// <summary>How old the oldest queued submission is; zero when the queue is empty.</summary>
    public TimeSpan AgeOfOldest(QueueStatistics statistics) =>
        statistics.OldestPendingAcceptedAt is { } at ? time.GetUtcNow() - FeedTime.ToDateTimeOffset(at) : TimeSpan.Zero;

    /// <summary>Fresh statistics, for the readiness check.</summary>
    public Task<QueueStatistics> ReadAsync(CancellationToken cancellationToken) => store.GetQueueStatisticsAsync(cancellationToken);

    /// <summary>The latest sample, refreshed when older than a second; null when the store cannot say.</summary>
    public QueueStatistics? Sample()
    {
        lock (_lock)
        {
            var now = time.GetUtcNow();
            if (_sample is { } cached && now - cached.At < SampleInterval)
            {
                return cached.Value;
            }

            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                var value = store.GetQueueStatisticsAsync(timeout.Token).GetAwaiter().GetResult();
                _sample = (value, now);
                return value;
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The store is down: report the last known values; the readiness check reports the outage.
                return _sample?.Value;
            }
        }
    }
}

/// <summary>
/// The observable gauges: queue depth, age of the oldest queued submission, replay-cache entries, the audit backlog
/// (and drops), and the long-poll searches held now.
/// </summary>
internal sealed class OperabilityGauges : IHostedService
{
    public OperabilityGauges(PitMetrics metrics, QueueMonitor queue, IDpopReplayCache replayCache, AuditTrail audit, FeedWaiterLimits waiters)
    {
        metrics.Meter.CreateObservableGauge("pit.queue.depth", () => Measure(queue.Sample(), s => s.Pending),
            description: "Submissions accepted and not yet processed.");
        metrics.Meter.CreateObservableGauge("pit.queue.oldest_age", () => Measure(queue.Sample(), s => queue.AgeOfOldest(s).TotalSeconds),
            unit: "s", description: "Age of the oldest queued submission (0 when the queue is empty).");
        if (replayCache is IReplayCacheStatistics replay)
        {
            metrics.Meter.CreateObservableGauge("pit.dpop.replay_cache.entries", () => replay.Entries,
                description: "DPoP proofs remembered against replay.");
            metrics.Meter.CreateObservableGauge("pit.dpop.replay_cache.capacity", () => replay.Capacity,
                description: "Most DPoP proofs the replay cache can hold (Pit:Auth:DPoP:ReplayCacheProofsPerSecond over the iat window); when full, new proofs are answered 429.");
        }

        metrics.Meter.CreateObservableGauge("pit.audit.backlog", () => audit.Backlog,
            description: "Audit entries waiting in the buffer for their write (they pile up while the store takes no writes).");
        metrics.Meter.CreateObservableCounter("pit.audit.dropped", () => audit.Dropped,
            description: "Audit entries dropped because the buffer was full (Pit:Processing:MaxQueuedAuditEntries).");
        metrics.Meter.CreateObservableGauge("pit.feed.waiters", () => waiters.Waiting,
            description: "Long-poll searches held now, waiting for news (at most Pit:Feed:MaxWaiters).");
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static IEnumerable<Measurement<T>> Measure<T>(QueueStatistics? sample, Func<QueueStatistics, T> value)
        where T : struct =>
        sample is { } s ? [new Measurement<T>(value(s))] : [];
}

/// <summary>Not ready while the head of the queue is older than <see cref="HealthOptions.MaxQueueAge"/>.</summary>
internal sealed class QueueAgeHealthCheck(QueueMonitor queue, IOptions<HealthOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(3));
            var statistics = await queue.ReadAsync(timeout.Token);
            var age = queue.AgeOfOldest(statistics);
            return age > options.Value.MaxQueueAge
                ? HealthCheckResult.Unhealthy($"The oldest queued submission waits for {age.TotalSeconds:0} s (limit {options.Value.MaxQueueAge.TotalSeconds:0} s).")
                : HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store check reports an unreachable store; this check only judges the queue.
            return HealthCheckResult.Healthy("Queue statistics could not be read.");
        }
    }
}
