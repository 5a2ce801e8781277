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
}

/// <summary>The real queue whose first <see cref="WritesToFail"/> group commits fail.</summary>
internal sealed class FailingQueueStore(ISubmissionQueueStore inner) : ISubmissionQueueStore
{
    private int _writes;
    private int _applies;
    private int _failedWrites;

    public int WritesToFail { get; init; }

    public int AppliesToFail { get; init; }

    public int FailedWrites => Volatile.Read(ref _failedWrites);

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

    public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) => inner.GetQueueStatisticsAsync(cancellationToken);

    public Task<AppliedBatch> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _applies) <= AppliesToFail
            ? throw new IOException("simulated apply failure")
            : inner.ApplyPendingAsync(maxCount, cancellationToken);
}

/// <summary>The real Patient feed whose reads by id fail with an unexpected exception (a bug, not an outage).</summary>
internal sealed class FailingFeedStore(IPatientFeedStore inner) : IPatientFeedStore
{
    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        throw new InvalidOperationException("simulated bug");

    public Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) => inner.SearchAsync(query, cancellationToken);
}
