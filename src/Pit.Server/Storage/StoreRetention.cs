using Microsoft.Extensions.Options;
using Pit.Server.Audit;
using Pit.Server.Upsert;

namespace Pit.Server.Storage;

/// <summary>What one retention run removed.</summary>
/// <param name="AuditRowsDeleted">Audit rows deleted row by row (SQLite; PostgreSQL's default partition).</param>
/// <param name="SubmissionsDeleted">Processed submissions deleted.</param>
internal readonly record struct RetentionRun(long AuditRowsDeleted, long SubmissionsDeleted);

/// <summary>
/// Keeps stored history within its retention, off the request path: at start and then hourly it prepares the audit
/// log for the next days (PostgreSQL: day partitions for today to today + 2), removes audit entries older than
/// <see cref="AuditOptions.RetentionDays"/> and processed submissions older than
/// <see cref="StorageOptions.SubmissionRetentionDays"/>, each in statements of at most <see cref="BatchRows"/> rows.
/// Every instance runs it; the engines make concurrent runs harmless.
/// </summary>
internal sealed partial class StoreRetention(
    IRetentionStore store, TimeProvider time, IOptions<AuditOptions> audit, IOptions<StorageOptions> storage, ILogger<StoreRetention> logger)
    : BackgroundService
{
    /// <summary>Time between runs.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>Rows per delete statement: a short transaction, so the writer is never held for long.</summary>
    public const int BatchRows = 5_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                try
                {
                    await RunOnceAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogRunFailed(logger, ex);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Days after today the hourly run prepares the audit log for.</summary>
    public const int DaysAhead = 2;

    /// <summary>One run, with cut-offs from the current time.</summary>
    public Task<RetentionRun> RunOnceAsync(CancellationToken cancellationToken) => RunOnceAsync(DaysAhead, cancellationToken);

    /// <summary>One run that prepares the audit log for today and <paramref name="daysAhead"/> more days.</summary>
    public async Task<RetentionRun> RunOnceAsync(int daysAhead, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await store.PrepareAuditAsync(FeedTime.FromDateTimeOffset(now), FeedTime.FromDateTimeOffset(now.AddDays(daysAhead)), cancellationToken);

        var auditBefore = FeedTime.FromDateTimeOffset(now.AddDays(-audit.Value.RetentionDays));
        var auditRows = await RepeatAsync(ct => store.RemoveAuditBeforeAsync(auditBefore, BatchRows, ct), cancellationToken);
        var submissionsBefore = FeedTime.FromDateTimeOffset(now.AddDays(-storage.Value.SubmissionRetentionDays));
        var submissions = await RepeatAsync(ct => store.RemoveProcessedSubmissionsBeforeAsync(submissionsBefore, BatchRows, ct), cancellationToken);
        if (auditRows + submissions > 0)
        {
            LogRemoved(logger, auditRows, submissions);
        }

        return new RetentionRun(auditRows, submissions);
    }

    private static async Task<long> RepeatAsync(Func<CancellationToken, Task<int>> batch, CancellationToken cancellationToken)
    {
        long total = 0;
        int removed;
        do
        {
            removed = await batch(cancellationToken);
            total += removed;
        }
        while (removed == BatchRows);
        return total;
    }

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "Retention removed {AuditRows} audit rows and {Submissions} processed submissions")]
    private static partial void LogRemoved(ILogger logger, long auditRows, long submissions);

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "The retention run failed; trying again within the hour")]
    private static partial void LogRunFailed(ILogger logger, Exception exception);
}
