using Microsoft.Extensions.Options;
using Pit.Server.Processing;

namespace Pit.Server.Patients;

/// <summary>
/// One server-wide budget for the bytes of request bodies that are being read or parsed: what the request path holds
/// before a submission reaches the queue (which bounds its own bytes, <see cref="ProcessingOptions.MaxQueuedBytes"/>).
/// Without it that memory grows with the number of connections. A request takes its share before it reads a byte
/// and gives it back once the body is parsed and handed over (or refused); one that cannot get its share within
/// <see cref="Wait"/> is turned away instead of being held.
/// </summary>
/// <remarks>
/// Counting semaphore over bytes with first-come order: a large body waiting at the head is not overtaken by a stream
/// of small ones, so it cannot starve. A share larger than the whole budget is cut to the whole budget, so one body
/// can always be read on an idle server. Waiting uses <see cref="TimeProvider"/>, so tests drive it with a fake clock.
/// </remarks>
internal sealed class RequestBodyBudget
{
    private readonly Lock _lock = new();
    private readonly LinkedList<Waiter> _waiters = new();
    private readonly TimeProvider _time;
    private long _available;

    public RequestBodyBudget(IOptions<ProcessingOptions> options, TimeProvider time)
        : this(options.Value.MaxInFlightBodyBytes, options.Value.InFlightBodyWait, time)
    {
    }

    public RequestBodyBudget(long capacity, TimeSpan wait, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(wait, TimeSpan.Zero);
        Capacity = capacity;
        Wait = wait;
        _available = capacity;
        _time = time;
    }

    /// <summary>The budget in bytes.</summary>
    public long Capacity { get; }

    /// <summary>How long a request may wait for its share before it is refused.</summary>
    public TimeSpan Wait { get; }

    /// <summary>Bytes currently held by requests.</summary>
    public long InUse
    {
        get
        {
            lock (_lock)
            {
                return Capacity - _available;
            }
        }
    }

    /// <summary>Requests waiting for their share.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiters.Count;
            }
        }
    }

    /// <summary>
    /// Takes <paramref name="bytes"/> (at most <see cref="Capacity"/>) from the budget, waiting up to <see cref="Wait"/>
    /// behind earlier requests. Returns the share, to be disposed once the body is parsed and handed over, or null when
    /// it could not be had in time; throws <see cref="OperationCanceledException"/> (and holds nothing) when cancelled.
    /// </summary>
    public async ValueTask<Share?> AcquireAsync(long bytes, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        bytes = Math.Clamp(bytes, 0, Capacity);
        Waiter waiter;
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= bytes)
            {
                _available -= bytes;
                return new Share(this, bytes);
            }

            if (Wait == TimeSpan.Zero)
            {
                return null;
            }

            waiter = new Waiter(bytes);
            waiter.Node = _waiters.AddLast(waiter);
        }

        try
        {
            await waiter.Granted.Task.WaitAsync(Wait, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            lock (_lock)
            {
                if (waiter.Node!.List is not null)
                {
                    // Still in line: leave it. The head leaving may let smaller requests behind it in.
                    _waiters.Remove(waiter.Node);
                    GrantInOrder();
                    if (ex is OperationCanceledException)
                    {
                        throw;
                    }

                    return null;
                }
            }

            // The share was granted as the wait ended: it is ours, so a cancelled request must give it back.
            if (ex is OperationCanceledException)
            {
                Release(bytes);
                throw;
            }
        }

        return new Share(this, bytes);
    }

    private void Release(long bytes)
    {
        lock (_lock)
        {
            _available += bytes;
            GrantInOrder();
        }
    }

    // Under the lock: hands shares to waiters from the head while they fit.
    private void GrantInOrder()
    {
        while (_waiters.First is { } head && head.Value.Bytes <= _available)
        {
            _waiters.RemoveFirst();
            _available -= head.Value.Bytes;
            head.Value.Granted.TrySetResult();
        }
    }

    /// <summary>Bytes held from the budget until disposed (once; disposing again does nothing).</summary>
    internal sealed class Share(RequestBodyBudget budget, long bytes) : IDisposable
    {
        private int _released;

        /// <summary>The bytes this share holds.</summary>
        public long Bytes => bytes;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                budget.Release(bytes);
            }
        }
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes => bytes;

        public LinkedListNode<Waiter>? Node { get; set; }

        // Continuations run off the lock of whoever released the bytes.
        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
