using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Pit.Server.Storage;

namespace Pit.Server.Processing;

/// <summary>
/// Records who did what, batched off the request path into the store's audit_log table. Entries hold ids,
/// organisation numbers and outcomes only: never tokens, proofs or identity numbers.
/// </summary>
/// <remarks>
/// At most <see cref="ProcessingOptions.MaxQueuedAuditEntries"/> entries wait for their write (plus the one batch
/// being written). Beyond that bound an entry is dropped rather than held or made to block the request: every drop is
/// counted (<see cref="Dropped"/>), the first of an episode logs a warning, and the next successful write logs how
/// many were lost.
/// </remarks>
internal sealed partial class AuditTrail(IAuditStore store, IOptions<ProcessingOptions> options, ILogger<AuditTrail> logger) : DrainingService
{
    private readonly Channel<AuditEntry> _channel = Channel.CreateBounded<AuditEntry>(new BoundedChannelOptions(options.Value.MaxQueuedAuditEntries)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private long _dropped;
    private long _droppedReported;
    private int _dropEpisode;

    /// <summary>Entries dropped since start because the buffer was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    public void Record(AuditEntry entry)
    {
        if (_channel.Writer.TryWrite(entry))
        {
            return;
        }

        Interlocked.Increment(ref _dropped);
        if (Interlocked.Exchange(ref _dropEpisode, 1) == 0)
        {
            LogAuditFull(logger, options.Value.MaxQueuedAuditEntries);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<AuditEntry>(512);
        while (await _channel.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < 512 && _channel.Reader.TryRead(out var entry))
            {
                batch.Add(entry);
            }

            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await store.AppendAuditAsync(batch, CancellationToken.None);
                    ReportDropped();
                    break;
                }
                catch (Exception ex) when (attempt < 5)
                {
                    LogAuditRetry(logger, ex, batch.Count, attempt);
                    await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), CancellationToken.None);
                }
                catch (Exception ex)
                {
                    LogAuditLost(logger, ex, batch.Count);
                    break;
                }
            }

            batch.Clear();
        }
    }

    protected override void CompleteIntake() => _channel.Writer.TryComplete();

    private void ReportDropped()
    {
        var dropped = Interlocked.Read(ref _dropped);
        if (dropped != _droppedReported)
        {
            LogAuditDropped(logger, dropped - _droppedReported, dropped);
            _droppedReported = dropped;
            Volatile.Write(ref _dropEpisode, 0);
        }
    }

    [LoggerMessage(EventId = 32, Level = LogLevel.Error, Message = "The audit buffer is full ({Capacity} entries); new audit entries are dropped until writes catch up")]
    private static partial void LogAuditFull(ILogger logger, int capacity);

    [LoggerMessage(EventId = 33, Level = LogLevel.Error, Message = "{Count} audit entries were dropped while the buffer was full ({Total} since start)")]
    private static partial void LogAuditDropped(ILogger logger, long count, long total);

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Writing {Count} audit entries failed (attempt {Attempt}); retrying")]
    private static partial void LogAuditRetry(ILogger logger, Exception exception, int count, int attempt);

    [LoggerMessage(EventId = 31, Level = LogLevel.Error, Message = "Writing {Count} audit entries failed for good")]
    private static partial void LogAuditLost(ILogger logger, Exception exception, int count);
}
