using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Pit.Server.Processing;
using Pit.Server.Storage;

namespace Pit.Server.Audit;

/// <summary>
/// Records who did what, batched off the request path into the store's audit_log table. Entries hold ids,
/// organisation numbers and outcomes only: never tokens, proofs or identity numbers.
/// </summary>
/// <remarks>
/// At most <see cref="ProcessingOptions.MaxQueuedAuditEntries"/> entries wait for their write (plus the one batch
/// being written). Beyond that bound the newest entry is dropped rather than held or made to block the request: every
/// drop is counted (<see cref="Dropped"/>), the first of an episode logs an error, and the next successful write logs
/// how many were lost. A failed write is retried until it succeeds (backing off by <see cref="RetryBackoff.AuditWrites"/>),
/// so in a database outage entries wait in this buffer and are written, in order, after recovery; only the bound loses
/// any.
/// </remarks>
internal sealed partial class AuditTrail(IAuditStore store, IOptions<ProcessingOptions> options, TimeProvider time, ILogger<AuditTrail> logger) : DrainingService
{
    private readonly Channel<AuditEntry> _channel = Channel.CreateBounded<AuditEntry>(new BoundedChannelOptions(options.Value.MaxQueuedAuditEntries)
    {
        SingleReader = true,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly StoreOutageLog _outage = new(logger, "Writing audit entries (they wait in the buffer)", time);

    private long _dropped;
    private long _droppedReported;
    private int _dropEpisode;
    private int _writing;
    private int _failing;

    /// <summary>Entries dropped since start because the buffer was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Entries waiting for their write: the buffer plus the batch being written.</summary>
    public int Backlog => _channel.Reader.Count + Volatile.Read(ref _writing);

    /// <summary>Whether the latest attempt to write failed (the store is down): the backlog waits for it.</summary>
    public bool WritesFailing => Volatile.Read(ref _failing) == 1;

    /// <summary>Whether entries have been dropped since the last successful write.</summary>
    public bool DroppingNow => Volatile.Read(ref _dropEpisode) == 1;

    /// <summary>The buffer's bound.</summary>
    public int Capacity => options.Value.MaxQueuedAuditEntries;

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
        var heldAtShutdownLogged = false;
        while (await _channel.Reader.WaitToReadAsync(CancellationToken.None))
        {
            while (batch.Count < 512 && _channel.Reader.TryRead(out var entry))
            {
                batch.Add(entry);
            }

            Volatile.Write(ref _writing, batch.Count);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await store.AppendAuditAsync(batch, CancellationToken.None);
                    Volatile.Write(ref _failing, 0);
                    _outage.Succeeded();

                    ReportDropped();
                    break;
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Never given up: at shutdown the host's timeout ends the wait, and what is still held is logged.
                    Volatile.Write(ref _failing, 1);
                    _outage.Failed(ex);

                    if (stoppingToken.IsCancellationRequested && !heldAtShutdownLogged)
                    {
                        heldAtShutdownLogged = true;
                        LogAuditHeldAtShutdown(logger, Backlog);
                    }

                    await RetryBackoff.AuditWrites.WaitAsync(attempt, time, CancellationToken.None);
                }
            }

            batch.Clear();
            Volatile.Write(ref _writing, 0);
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


    [LoggerMessage(EventId = 31, Level = LogLevel.Error, Message = "Shutting down while the store takes no audit writes: {Count} audit entries are still held and will be lost if the store does not return before the shutdown timeout")]
    private static partial void LogAuditHeldAtShutdown(ILogger logger, int count);

}
