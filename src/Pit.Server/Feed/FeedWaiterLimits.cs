using Microsoft.Extensions.Options;

namespace Pit.Server.Feed;

/// <summary>
/// How many searches may wait at once: <see cref="FeedOptions.MaxWaitersPerClient"/> per client (client_id +
/// orgnr_parent) and <see cref="FeedOptions.MaxWaiters"/> in all. A request over either limit is not refused, only
/// answered at once. The table holds only clients waiting now, so it is bounded by the global limit.
/// </summary>
internal sealed class FeedWaiterLimits(IOptions<FeedOptions> options)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(string ClientId, string Organisation), int> _perClient = [];
    private int _total;

    /// <summary>Searches waiting now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _total;
            }
        }
    }

    /// <summary>Clients with a search waiting now.</summary>
    public int Clients
    {
        get
        {
            lock (_lock)
            {
                return _perClient.Count;
            }
        }
    }

    /// <summary>A place for one waiting search of this client, or null when a limit is reached. Dispose to give it back.</summary>
    public IDisposable? TryEnter(string clientId, string organisation)
    {
        var settings = options.Value;
        var key = (clientId, organisation);
        lock (_lock)
        {
            var mine = _perClient.GetValueOrDefault(key);
            if (_total >= settings.MaxWaiters || mine >= settings.MaxWaitersPerClient)
            {
                return null;
            }

            _perClient[key] = mine + 1;
            _total++;
        }

        return new Lease(this, key);
    }

    private void Leave((string, string) key)
    {
        lock (_lock)
        {
            _total--;
            if (--_perClient[key] == 0)
            {
                _perClient.Remove(key);
            }
        }
    }

    private sealed class Lease(FeedWaiterLimits limits, (string, string) key) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                limits.Leave(key);
            }
        }
    }
}
