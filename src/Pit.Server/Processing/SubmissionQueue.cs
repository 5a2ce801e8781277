using System.Diagnostics;
using System.Threading.Channels;
using Pit.Server.Storage;
using Pit.Server.Telemetry;

namespace Pit.Server.Processing;

/// <summary>
/// The durable accept path with group commit: requests hand their validated submission to one writer loop, which
/// commits whatever has queued up (up to <see cref="MaxBatch"/>) in one transaction and completes each request only
/// after that commit. One fsync serves every request that arrived while the previous one was running.
/// </summary>
internal sealed partial class SubmissionQueue(ISubmissionQueueStore store, ProcessingSignal signal, PitMetrics metrics, ILogger<SubmissionQueue> logger) : BackgroundService
{
    private const int MaxBatch = 256;

    private readonly Channel<Pending> _channel = Channel.CreateBounded<Pending>(new BoundedChannelOptions(10_000)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    /// <summary>Returns once <paramref name="submission"/> is durably stored; throws when it could not be stored.</summary>
    public async Task AddAsync(NewSubmission submission, CancellationToken cancellationToken)
    {
        // The POST's span names the submission, so its processing (span pit.submissions.apply) can be found.
        var request = Activity.Current;
        request?.SetTag("pit.submission.id", submission.Id.ToString("D"));
        var pending = new Pending(submission, request?.Context);
        await _channel.Writer.WriteAsync(pending, cancellationToken);

        // Not cancellable from here on: the submission may already be in the batch being committed.
        await pending.Completion.Task;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Pending>(MaxBatch);
        var submissions = new List<NewSubmission>(MaxBatch);

        // Runs until the channel is completed at shutdown, so submissions already handed over are still committed.
        while (await _channel.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < MaxBatch && _channel.Reader.TryRead(out var item))
            {
                batch.Add(item);
                submissions.Add(item.Submission);
            }

            using var commit = PitMetrics.Tracing.StartActivity(
                "pit.submissions.commit", ActivityKind.Internal, parentContext: default,
                links: batch.Where(p => p.Request is not null).Select(p => new ActivityLink(p.Request!.Value)));
            commit?.SetTag("pit.submissions.count", batch.Count);
            try
            {
                await store.AddSubmissionsAsync(submissions, CancellationToken.None);
                metrics.CommitBatch(batch.Count);
                foreach (var item in batch)
                {
                    item.Completion.TrySetResult();
                }

                signal.Notify();
            }
            catch (Exception ex)
            {
                LogCommitFailed(logger, ex, batch.Count);
                var failure = new StoreUnavailableException("The submission could not be stored.", ex);
                foreach (var item in batch)
                {
                    item.Completion.TrySetException(failure);
                }
            }

            batch.Clear();
            submissions.Clear();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _channel.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Error, Message = "Committing {Count} submissions failed; their requests are answered 503")]
    private static partial void LogCommitFailed(ILogger logger, Exception exception, int count);

    private sealed class Pending(NewSubmission submission, ActivityContext? request)
    {
        public NewSubmission Submission { get; } = submission;

        public ActivityContext? Request { get; } = request;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The store could not take the write; the client should retry later (503).</summary>
internal sealed class StoreUnavailableException(string message, Exception inner) : Exception(message, inner);

/// <summary>Wakes the processor when new submissions have been committed.</summary>
internal sealed class ProcessingSignal
{
    private readonly Channel<bool> _channel = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Notify() => _channel.Writer.TryWrite(true);

    /// <summary>Waits for a notification or the timeout, whichever comes first.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _channel.Reader.ReadAsync(timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }
}
