using Microsoft.Extensions.DependencyInjection.Extensions;
using Pit.Server.Storage;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>Decorating the server's store, for the paths that must survive a store failure.</summary>
internal static class StoreDecoration
{
    /// <summary>Wraps the registered <see cref="IPitStore"/> in a decorator.</summary>
    public static void DecorateStore(this IServiceCollection services, Func<IPitStore, IPitStore> decorate)
    {
        var original = services.Last(d => d.ServiceType == typeof(IPitStore));
        services.Replace(ServiceDescriptor.Singleton(sp => decorate((IPitStore)original.ImplementationFactory!(sp))));
    }
}

/// <summary>The real store with failures switched on.</summary>
internal sealed class FailingStore(IPitStore inner) : IPitStore, IQueueStatistics
{
    private int _writes;
    private int _applies;
    private int _failedWrites;

    public int WritesToFail { get; init; }

    public bool FailReads { get; init; }

    public int AppliesToFail { get; init; }

    public int FailedWrites => Volatile.Read(ref _failedWrites);

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _writes) <= WritesToFail)
        {
            Interlocked.Increment(ref _failedWrites);
            throw new IOException("simulated disk failure");
        }

        return inner.AddSubmissionsAsync(batch, cancellationToken);
    }

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) => inner.GetSubmissionAsync(id, cancellationToken);

    public Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _applies) <= AppliesToFail
            ? throw new IOException("simulated apply failure")
            : inner.ApplyPendingAsync(maxCount, cancellationToken);

    public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) =>
        ((IQueueStatistics)inner).GetQueueStatisticsAsync(cancellationToken);

    public Task<IReadOnlyList<QueuedSubmission>> PeekQueuedAsync(int maxCount, CancellationToken cancellationToken) =>
        ((IQueueStatistics)inner).PeekQueuedAsync(maxCount, cancellationToken);

    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        FailReads ? throw new InvalidOperationException("simulated bug") : inner.GetPatientAsync(id, cancellationToken);

    public Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) => inner.SearchAsync(query, cancellationToken);

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        inner.GetOrCreateSecretAsync(name, create, cancellationToken);

    public Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken) => inner.AppendAuditAsync(entries, cancellationToken);

    public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
        inner.ReadAuditAsync(organisation, limit, cancellationToken);

    public Task CheckHealthAsync(CancellationToken cancellationToken) => inner.CheckHealthAsync(cancellationToken);
}
