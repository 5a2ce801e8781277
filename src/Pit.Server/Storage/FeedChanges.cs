namespace Pit.Server.Storage;

/// <summary>
/// Tells waiting feed requests that a tenant's feed may have changed. Each engine brings its own: SQLite wakes the
/// waiters of this process, PostgreSQL also tells every other instance (<c>LISTEN/NOTIFY</c>). A signal is only a
/// hint to look again; waiters always re-run their query and never trust what the signal says.
/// </summary>
internal interface IFeedChangeNotifier
{
    /// <summary>
    /// Called after an apply batch for <paramref name="tenants"/> has committed. Never throws for a failed delivery:
    /// the batch is committed whatever happens here, and a waiter that hears nothing still answers at its timeout.
    /// </summary>
    Task PublishAsync(IReadOnlyCollection<string> tenants, CancellationToken cancellationToken);
}

/// <summary>
/// The waiters of this process, by tenant. A waiter subscribes <em>before</em> it runs its query and awaits the
/// subscription after, so a change that commits between the two is never missed. Its size is bounded by the
/// waiter limits of the feed (<c>Pit:Feed:MaxWaiters</c>): only admitted requests subscribe.
/// </summary>
internal sealed class FeedChangeHub
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, HashSet<FeedChangeSubscription>> _byTenant = new(StringComparer.Ordinal);
    private readonly HashSet<FeedChangeSubscription> _anyTenant = [];

    /// <summary>Subscribers waiting now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _anyTenant.Count + _byTenant.Values.Sum(s => s.Count);
            }
        }
    }

    /// <summary>Starts listening for changes of <paramref name="tenant"/>'s feed (null: of any tenant). Dispose to stop.</summary>
    public FeedChangeSubscription Subscribe(string? tenant)
    {
        var subscription = new FeedChangeSubscription(this, tenant);
        lock (_lock)
        {
            if (tenant is null)
            {
                _anyTenant.Add(subscription);
            }
            else if (_byTenant.TryGetValue(tenant, out var set))
            {
                set.Add(subscription);
            }
            else
            {
                _byTenant[tenant] = [subscription];
            }
        }

        return subscription;
    }

    /// <summary>Wakes the subscribers of <paramref name="tenants"/> and those of every tenant.</summary>
    public void Wake(IEnumerable<string> tenants)
    {
        List<FeedChangeSubscription> woken;
        lock (_lock)
        {
            woken = [.. _anyTenant];
            foreach (var tenant in tenants)
            {
                if (_byTenant.TryGetValue(tenant, out var set))
                {
                    woken.AddRange(set);
                }
            }
        }

        foreach (var subscription in woken)
        {
            subscription.Signal();
        }
    }

    /// <summary>Wakes every subscriber (e.g. after signals may have been lost while reconnecting).</summary>
    public void WakeAll()
    {
        List<FeedChangeSubscription> woken;
        lock (_lock)
        {
            woken = [.. _anyTenant, .. _byTenant.Values.SelectMany(s => s)];
        }

        foreach (var subscription in woken)
        {
            subscription.Signal();
        }
    }

    internal void Remove(FeedChangeSubscription subscription)
    {
        lock (_lock)
        {
            if (subscription.Tenant is null)
            {
                _anyTenant.Remove(subscription);
            }
            else if (_byTenant.TryGetValue(subscription.Tenant, out var set) && set.Remove(subscription) && set.Count == 0)
            {
                _byTenant.Remove(subscription.Tenant);
            }
        }
    }
}

/// <summary>One waiter's interest in a feed; <see cref="Changed"/> completes at the first signal after subscribing.</summary>
internal sealed class FeedChangeSubscription : IDisposable
{
    private readonly FeedChangeHub _hub;

    // Continuations run off the waking thread, so the apply loop never runs request code.
    private readonly TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal FeedChangeSubscription(FeedChangeHub hub, string? tenant)
    {
        _hub = hub;
        Tenant = tenant;
    }

    /// <summary>The tenant listened to; null for every tenant.</summary>
    public string? Tenant { get; }

    /// <summary>Completes when the feed may have changed since <see cref="FeedChangeHub.Subscribe"/>.</summary>
    public Task Changed => _changed.Task;

    internal void Signal() => _changed.TrySetResult();

    public void Dispose() => _hub.Remove(this);
}

/// <summary>The signal for one process over one store (SQLite): the waiters of this process are all there are.</summary>
internal sealed class InProcessFeedChangeNotifier(FeedChangeHub hub) : IFeedChangeNotifier
{
    public Task PublishAsync(IReadOnlyCollection<string> tenants, CancellationToken cancellationToken)
    {
        hub.Wake(tenants);
        return Task.CompletedTask;
    }
}
