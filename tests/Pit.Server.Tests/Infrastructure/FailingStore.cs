using Microsoft.Extensions.DependencyInjection.Extensions;
using Pit.Server.Storage;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>Decorating one of the server's store interfaces, for the paths that must survive a store failure.</summary>
internal static class StoreDecoration
{
    /// <summary>Wraps the registered <typeparamref name="TStore"/> in a decorator.</summary>
    public static void DecorateStore<TStore>(this IServiceCollection services, Func<TStore, TStore> decorate)
        where TStore : class
    {
        var original = services.Last(d => d.ServiceType == typeof(TStore));
        services.Replace(ServiceDescriptor.Singleton(sp => decorate((TStore)original.ImplementationFactory!(sp))));
    }

    /// <summary>Completes <paramref name="stalled"/> and waits for <paramref name="until"/>, when set.</summary>
    internal static async Task StallAsync(Task? until, TaskCompletionSource stalled)
    {
        if (until is not null)
        {
            stalled.TrySetResult();
            await until;
        }
    }
}

/// <summary>The real queue whose first <see cref="WritesToFail"/> group commits (or applies) fail, or whose commits stall.</summary>
internal sealed class FailingQueueStore(ISubmissionQueueStore inner) : ISubmissionQueueStore
{
    private readonly TaskCompletionSource _commitStalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _writes;
    private int _applies;
    private int _failedWrites;

    public int WritesToFail { get; init; }

    public int AppliesToFail { get; init; }

    public int FailedWrites => Volatile.Read(ref _failedWrites);

    /// <summary>When set, every submission commit waits for it first (a stalled disk).</summary>
    public Task? StallCommitsUntil { get; init; }

    /// <summary>Completes once a commit is waiting on <see cref="StallCommitsUntil"/>.</summary>
    public Task CommitStalled => _commitStalled.Task;

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _writes) <= WritesToFail)
        {
            Interlocked.Increment(ref _failedWrites);
            throw new IOException("simulated disk failure");
        }

        await StoreDecoration.StallAsync(StallCommitsUntil, _commitStalled);
        await inner.AddSubmissionsAsync(batch, cancellationToken);
    }

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) => inner.GetSubmissionAsync(id, cancellationToken);

    public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) => inner.GetQueueStatisticsAsync(cancellationToken);

    public Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _applies) <= AppliesToFail
            ? throw new IOException("simulated apply failure")
            : inner.ApplyPendingAsync(maxCount, maxBytes, cancellationToken);
}

/// <summary>
/// The real Patient feed whose reads by id fail with an unexpected exception (a bug, not an outage), or with the one
/// <paramref name="failure"/> makes.
/// </summary>
internal sealed class FailingFeedStore(IPatientFeedStore inner, Func<Exception>? failure = null) : IPatientFeedStore
{
    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        throw (failure?.Invoke() ?? new InvalidOperationException("simulated bug"));

    public Task<PatientPage> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) => inner.SearchAsync(query, cancellationToken);
}

/// <summary>The real secret store whose first <see cref="ReadsToFail"/> reads fail (a store blip).</summary>
internal sealed class FailingSecretStore(ISharedSecretStore inner) : ISharedSecretStore
{
    private int _reads;

    public int ReadsToFail { get; init; }

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _reads) <= ReadsToFail
            ? Task.FromException<byte[]>(new IOException("simulated store blip"))
            : inner.GetOrCreateSecretAsync(name, create, cancellationToken);
}

/// <summary>The real audit store whose writes wait for <see cref="StallUntil"/>.</summary>
internal sealed class StallingAuditStore(IAuditStore inner) : IAuditStore
{
    private readonly TaskCompletionSource _stalled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task? StallUntil { get; init; }

    /// <summary>Completes once a write is waiting on <see cref="StallUntil"/>.</summary>
    public Task Stalled => _stalled.Task;

    public async Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await StoreDecoration.StallAsync(StallUntil, _stalled);
        await inner.AppendAuditAsync(entries, cancellationToken);
    }

    public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
        inner.ReadAuditAsync(organisation, limit, cancellationToken);
}

/// <summary>
/// A store outage that a test switches on and off: while <see cref="Down"/> is set, applying submissions (through
/// <see cref="Queue"/>) and writing audit entries (through <see cref="Audit"/>) fail as an unreachable store does.
/// </summary>
internal sealed class StoreOutage
{
    private volatile bool _down;
    private int _failedApplies;
    private int _failedAuditWrites;

    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    public int FailedApplies => Volatile.Read(ref _failedApplies);

    public int FailedAuditWrites => Volatile.Read(ref _failedAuditWrites);

    public ISubmissionQueueStore Queue(ISubmissionQueueStore inner) => new OutageQueueStore(this, inner);

    public IAuditStore Audit(IAuditStore inner) => new OutageAuditStore(this, inner);

    private void ThrowWhenDown(ref int failures)
    {
        if (Down)
        {
            Interlocked.Increment(ref failures);
            throw new IOException("simulated store outage");
        }
    }

    private sealed class OutageQueueStore(StoreOutage outage, ISubmissionQueueStore inner) : ISubmissionQueueStore
    {
        public Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken) => inner.AddSubmissionsAsync(batch, cancellationToken);

        public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) => inner.GetSubmissionAsync(id, cancellationToken);

        public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) => inner.GetQueueStatisticsAsync(cancellationToken);

        public Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken)
        {
            outage.ThrowWhenDown(ref outage._failedApplies);
            return inner.ApplyPendingAsync(maxCount, maxBytes, cancellationToken);
        }
    }

    private sealed class OutageAuditStore(StoreOutage outage, IAuditStore inner) : IAuditStore
    {
        public Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
        {
            outage.ThrowWhenDown(ref outage._failedAuditWrites);
            return inner.AppendAuditAsync(entries, cancellationToken);
        }

        public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
            inner.ReadAuditAsync(organisation, limit, cancellationToken);
    }
}
