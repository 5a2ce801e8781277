using System.Diagnostics;
using Microsoft.Extensions.Options;
using Pit.Server.Storage;
using Pit.Server.Telemetry;

namespace Pit.Server.Processing;

/// <summary>Options of section <c>Pit:Processing</c>.</summary>
public sealed class ProcessingOptions
{
    /// <summary>Run the background processor in this instance (default true).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Submissions applied per transaction.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>How often an idle processor looks for work committed by other instances.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The background consumer of the durable queue: applies submissions in acceptance order through the store, which
/// marks each one done in the same transaction that writes its Patient. A crash at any point leaves every
/// submission either untouched (applied after restart) or fully applied.
/// </summary>
internal sealed partial class SubmissionProcessor(
    IPitStore store, ProcessingSignal signal, PitMetrics metrics, TimeProvider time, IOptions<ProcessingOptions> options,
    ILogger<SubmissionProcessor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.Enabled)
        {
            return;
        }

        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var applied = await ApplyBatchAsync(settings.BatchSize, stoppingToken);
                failures = 0;
                if (applied == 0)
                {
                    await signal.WaitAsync(settings.PollInterval, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                failures++;
                metrics.ApplyFailed();
                var delay = TimeSpan.FromMilliseconds(Math.Min(30_000, 100 * Math.Pow(2, Math.Min(failures, 10))));
                LogApplyFailed(logger, ex, failures, delay);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    /// <summary>
    /// One batch, traced as <c>pit.submissions.apply</c> with the ids it takes (<c>pit.submission.ids</c>; the POST's span
    /// carries <c>pit.submission.id</c>), and each submission's visibility lag recorded. The ids and acceptance times
    /// are read just before the batch, in the order the store applies them.
    /// </summary>
    private async Task<int> ApplyBatchAsync(int batchSize, CancellationToken cancellationToken)
    {
        IReadOnlyList<QueuedSubmission> next = store is IQueueStatistics statistics
            ? await statistics.PeekQueuedAsync(batchSize, cancellationToken)
            : [];
        using var activity = next.Count == 0 ? null : PitMetrics.Tracing.StartActivity("pit.submissions.apply");
        activity?.SetTag("pit.submission.ids", next.Select(s => s.Id.ToString("D")).ToArray());
        var applied = await store.ApplyPendingAsync(batchSize, cancellationToken);
        activity?.SetTag("pit.submissions.applied", applied);
        metrics.Applied(applied);
        var now = time.GetUtcNow();
        for (var i = 0; i < Math.Min(applied, next.Count); i++)
        {
            metrics.VisibilityLag(now - FeedTime.ToDateTimeOffset(next[i].AcceptedAt));
        }

        return applied;
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Applying submissions failed ({Failures} in a row); retrying in {Delay}")]
    private static partial void LogApplyFailed(ILogger logger, Exception exception, int failures, TimeSpan delay);
}
