using System.Threading.Channels;
using Pit.Server.Storage;

namespace Pit.Server.Processing;

/// <summary>
/// Records who did what, batched off the request path into the store's audit_log table. Entries hold ids,
/// organisation numbers and outcomes only: never tokens, proofs or identity numbers.
/// </summary>
internal sealed partial class AuditTrail(IAuditStore store, ILogger<AuditTrail> logger) : BackgroundService
{
    private readonly Channel<AuditEntry> _channel = Channel.CreateUnbounded<AuditEntry>(new UnboundedChannelOptions { SingleReader = true });

    public void Record(AuditEntry entry) => _channel.Writer.TryWrite(entry);

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

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _channel.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Writing {Count} audit entries failed (attempt {Attempt}); retrying")]
    private static partial void LogAuditRetry(ILogger logger, Exception exception, int count, int attempt);

    [LoggerMessage(EventId = 31, Level = LogLevel.Error, Message = "Writing {Count} audit entries failed for good")]
    private static partial void LogAuditLost(ILogger logger, Exception exception, int count);
}
