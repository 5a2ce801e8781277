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
internal sealed class FailingStore(IPitStore inner) : IPitStore
{
    private readonly TaskCompletionSource _commitStalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _auditStalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _writes;
    private int _failedWrites;
    private int _secretReads;

    public int WritesToFail { get; init; }

    public bool FailReads { get; init; }

    public int FailedWrites => Volatile.Read(ref _failedWrites);

    /// <summary>The first this many secret reads fail (a store blip).</summary>
    public int SecretReadsToFail { get; init; }

    /// <summary>When set, every submission commit waits for it first (a stalled disk).</summary>
    public Task? StallCommitsUntil { get; init; }

    /// <summary>Completes once a commit is waiting on <see cref="StallCommitsUntil"/>.</summary>
    public Task CommitStalled => _commitStalled.Task;

    /// <summary>When set, every audit write waits for it first.</summary>
    public Task? StallAuditUntil { get; init; }

    /// <summary>Completes once an audit write is waiting on <see cref="StallAuditUntil"/>.</summary>
    public Task AuditStalled => _auditStalled.Task;

    public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _writes) <= WritesToFail)
        {
            Interlocked.Increment(ref _failedWrites);
            throw new IOException("simulated disk failure");
        }

        await Stall(StallCommitsUntil, _commitStalled);
        await inner.AddSubmissionsAsync(batch, cancellationToken);
    }

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) => inner.GetSubmissionAsync(id, cancellationToken);

    public Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken) => inner.ApplyPendingAsync(maxCount, cancellationToken);

    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        FailReads ? throw new InvalidOperationException("simulated bug") : inner.GetPatientAsync(id, cancellationToken);

    public Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) => inner.SearchAsync(query, cancellationToken);

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        Interlocked.Increment(ref _secretReads) <= SecretReadsToFail
            ? Task.FromException<byte[]>(new IOException("simulated store blip"))
            : inner.GetOrCreateSecretAsync(name, create, cancellationToken);

    public async Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await Stall(StallAuditUntil, _auditStalled);
        await inner.AppendAuditAsync(entries, cancellationToken);
    }

    private static async Task Stall(Task? until, TaskCompletionSource stalled)
    {
        if (until is not null)
        {
            stalled.TrySetResult();
            await until;
        }
    }

    public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
        inner.ReadAuditAsync(organisation, limit, cancellationToken);

    public Task CheckHealthAsync(CancellationToken cancellationToken) => inner.CheckHealthAsync(cancellationToken);
}
