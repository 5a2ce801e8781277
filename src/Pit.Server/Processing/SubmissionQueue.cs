using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Pit.Server.Storage;
using Pit.Server.Telemetry;

namespace Pit.Server.Processing;

/// <summary>
/// The durable accept path with group commit: requests hand their validated submission to one writer loop, which
/// commits whatever has queued up (up to <see cref="MaxBatch"/>) in one transaction and completes each request only
/// after that commit. One fsync serves every request that arrived while the previous one was running.
/// </summary>
/// <remarks>
/// The queue is bounded by count (<see cref="ProcessingOptions.MaxQueuedSubmissions"/>) and by the bytes its
/// submissions hold (<see cref="ProcessingOptions.MaxQueuedBytes"/>), counted from hand-over until the request has
/// its answer. A submission that would cross either bound is refused at once with
/// <see cref="StoreUnavailableException"/> (503 + Retry-After): backpressure instead of a request that waits without
/// end or memory that grows with what clients send. Nothing refused is stored.
/// </remarks>
internal sealed partial class SubmissionQueue(
    ISubmissionQueueStore store, ProcessingSignal signal, PitMetrics metrics, IOptions<ProcessingOptions> options, TimeProvider time, ILogger<SubmissionQueue> logger)
    : DrainingService
{
    // Every failed commit is answered 503 (and shows in the access log); the log says when commits start and stop failing.
    private readonly StoreOutageLog _outage = new(logger, "Committing submissions (their requests are answered 503)", time);

    private const int MaxBatch = 256;

    // Object headers, the id, tenant and client strings, the hash: what a submission costs beyond its content.
    private const int OverheadBytes = 256;

    private readonly Channel<Pending> _channel = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.Value.MaxQueuedSubmissions)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private long _queuedBytes;

    /// <summary>Bytes held by submissions handed over and not yet answered.</summary>
    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>
    /// Returns once <paramref name="submission"/> is durably stored; throws <see cref="StoreUnavailableException"/>
    /// when it could not be stored or the queue is full or closed (never waits for room).
    /// </summary>
    public async Task AddAsync(NewSubmission submission, CancellationToken cancellationToken)
    {
        var size = SizeOf(submission);
        var before = Interlocked.Add(ref _queuedBytes, size) - size;

        // An empty queue takes any one submission, so a limit below the largest accepted body cannot refuse it forever.
        if (before > 0 && before + size > options.Value.MaxQueuedBytes)
        {
            Interlocked.Add(ref _queuedBytes, -size);
            LogQueueFull(logger, before, options.Value.MaxQueuedBytes);
            throw new StoreUnavailableException("The submission queue is full.") { QueueFull = true };
        }

        try
        {
            // The POST's span names the submission, so its processing (span pit.submissions.apply) can be found.
            var request = Activity.Current;
            request?.SetTag("pit.submission.id", submission.Id.ToString("D"));
            var pending = new Pending(submission, request?.Context);
            if (!_channel.Writer.TryWrite(pending))
            {
                // Full by count, or completed because the server is shutting down.
                throw new StoreUnavailableException("The submission queue is full or closed.") { QueueFull = true };
            }

            // Not cancellable from here on: the submission may already be in the batch being committed.
            await pending.Completion.Task;
        }
        finally
        {
            Interlocked.Add(ref _queuedBytes, -size);
        }
    }

    private static long SizeOf(NewSubmission submission)
    {
        long size = OverheadBytes + submission.Content.Length + submission.ContentHash.Length;
        foreach (var key in submission.Keys)
        {
            size += 2L * (key.System.Length + key.Value.Length) + 48;
        }

        return size;
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
                _outage.Succeeded();
                foreach (var item in batch)
                {
                    item.Completion.TrySetResult();
                }

                signal.Notify();
            }
            catch (Exception ex)
            {
                _outage.Failed(ex);
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

    protected override void CompleteIntake() => _channel.Writer.TryComplete();


    [LoggerMessage(EventId = 11, Level = LogLevel.Warning, Message = "Submission queue full ({QueuedBytes} of {MaxQueuedBytes} bytes); a submission is answered 503")]
    private static partial void LogQueueFull(ILogger logger, long queuedBytes, long maxQueuedBytes);

    private sealed class Pending(NewSubmission submission, ActivityContext? request)
    {
        public NewSubmission Submission { get; } = submission;

        public ActivityContext? Request { get; } = request;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>The store could not take the write, or the queue had no room; the client should retry later (503).</summary>
internal sealed class StoreUnavailableException : Exception
{
    public StoreUnavailableException(string message)
        : base(message)
    {
    }

    public StoreUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }

    /// <summary>Refused for want of room in the queue (backpressure), not because the store failed.</summary>
    public bool QueueFull { get; init; }
}

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
