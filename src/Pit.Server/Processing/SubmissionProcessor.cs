using System.Diagnostics;
using Microsoft.Extensions.Options;
using Pit.Server.Storage;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;

namespace Pit.Server.Processing;

/// <summary>Options of section <c>Pit:Processing</c>.</summary>
internal sealed class ProcessingOptions
{
    /// <summary>Run the background processor in this instance (default true).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Submissions applied per transaction.</summary>
    public int BatchSize { get; set; } = 256;

    /// <summary>
    /// Content bytes applied per transaction (default 16 MiB; a batch always takes at least one submission). A batch is
    /// held in memory three times over (stored bytes, parsed Patient, composed JSON), so 256 submissions of 880 KB cost
    /// ~330 MB; group-commit batches of ordinary Patients are far below this bound.
    /// </summary>
    public long MaxBatchBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>How often an idle processor looks for work committed by other instances.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Bytes that submissions waiting for their commit may hold before new ones are answered 503 (default 64 MiB).
    /// Group-commit batches are small (p50 6–9, p99 ~30 submissions under 32 writers, docs/PERFORMANCE.md), so 64 MiB
    /// is ~74 bodies of 880 KB or tens of thousands of ordinary Patients; 256 MiB only held more memory in a flood.
    /// </summary>
    public long MaxQueuedBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Submissions that may wait for their commit before new ones are answered 503 (default 10 000).</summary>
    public int MaxQueuedSubmissions { get; set; } = 10_000;

    /// <summary>
    /// Bytes of request bodies that may be read or parsed at once, server-wide, before they reach the queue (default
    /// 128 MiB). A POST takes its Content-Length (the 900 KB maximum when chunked) before it reads a byte.
    /// </summary>
    public long MaxInFlightBodyBytes { get; set; } = 128L * 1024 * 1024;

    /// <summary>How long a POST may wait for its share of <see cref="MaxInFlightBodyBytes"/> before it is answered 503 (default 2 s).</summary>
    public TimeSpan InFlightBodyWait { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Audit entries that may wait for their write; beyond it entries are counted, logged and dropped (default 100 000).</summary>
    public int MaxQueuedAuditEntries { get; set; } = 100_000;
}

/// <summary>
/// The background consumer of the durable queue: applies submissions in acceptance order through the store, which
/// marks each one done in the same transaction that writes its Patient. A crash at any point leaves every
/// submission either untouched (applied after restart) or fully applied.
/// </summary>
internal sealed class SubmissionProcessor(
    ISubmissionQueueStore store, ProcessingSignal signal, IFeedChangeNotifier feed, PitMetrics metrics, TimeProvider time, IOptions<ProcessingOptions> options,
    ILogger<SubmissionProcessor> logger) : BackgroundService
{
    private readonly StoreOutageLog _outage = new(logger, "Applying submissions", time);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.Enabled)
        {
            return;
        }

        var failures = 0;
        var shrink = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var applied = await ApplyBatchAsync(
                    Math.Max(1, settings.BatchSize >> shrink), Math.Max(1, settings.MaxBatchBytes >> shrink), stoppingToken);
                failures = 0;
                shrink = 0;
                _outage.Succeeded();
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
                // Short of memory: the batch rolled back and stays queued; retry it in halves until one submission
                // alone goes through, rather than failing the same large batch over and over.
                shrink = ex is OutOfMemoryException ? Math.Min(shrink + 1, 30) : shrink;
                failures++;
                metrics.ApplyFailed();
                _outage.Failed(ex);
                await RetryBackoff.Apply.WaitAsync(failures, time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    /// <summary>
    /// One batch, traced as <c>pit.submissions.apply</c> with the ids it took (<c>pit.submission.ids</c>; the POST's span
    /// carries <c>pit.submission.id</c>). When the batch's versions are visible at its commit (SQLite), each submission's
    /// visibility lag (acceptance to commit) is recorded and waiting feed requests of the batch's tenants are woken;
    /// otherwise (PostgreSQL) the sequencer does both when it stamps them.
    /// </summary>
    private async Task<int> ApplyBatchAsync(int batchSize, long batchBytes, CancellationToken cancellationToken)
    {
        using var activity = PitMetrics.Tracing.StartActivity("pit.submissions.apply");
        var batch = await store.ApplyPendingAsync(batchSize, batchBytes, cancellationToken);
        activity?.SetTag("pit.submission.ids", batch.Taken.Select(s => s.Id.ToString("D")).ToArray());
        activity?.SetTag("pit.submissions.applied", batch.Count);
        var visibleNow = batch.Count > 0 && !batch.StampedLater;
        if (visibleNow)
        {
            metrics.VisibilityLags(time.GetUtcNow(), batch.Taken.Select(t => t.AcceptedAt));
        }

        metrics.Applied(batch.Count);
        if (visibleNow)
        {
            // After the commit, so a woken waiter's query sees the batch. Failed or unchanged submissions wake too;
            // the waiter re-runs its query and, finding nothing new, waits on.
            await feed.PublishAsync([.. batch.Taken.Select(t => t.Tenant).Distinct(StringComparer.Ordinal)], cancellationToken);
        }

        return batch.Count;
    }
}
