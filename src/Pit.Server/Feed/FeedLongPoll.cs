using Pit.Server.Auth;
using Pit.Server.Storage;

namespace Pit.Server.Feed;

/// <summary>The page a search found, and whether the search was admitted to wait for it.</summary>
internal sealed record FeedPollResult(PatientPage Page, bool Waited);

/// <summary>
/// Holds a search whose page is empty until the caller's feed changes or the wait runs out, without a thread: the
/// request awaits a <see cref="FeedChangeSubscription"/> with a timeout. After every wake-up the query is run again
/// and its answer is the response, so paging, cursor rules and tenant isolation are those of any search, and the
/// signal's content is never trusted. Authentication (the DPoP proof included) ran once, when the request arrived;
/// nothing here checks it again, so holding a request cannot make its proof expire.
/// </summary>
internal sealed class FeedLongPoll(FeedChangeHub hub, FeedWaiterLimits limits, TimeProvider time, IHostApplicationLifetime lifetime)
{
    /// <summary>
    /// Runs <paramref name="query"/>; while it finds nothing and <paramref name="wait"/> has not passed, waits for a
    /// change of the caller's feed and runs it again. Over the waiter limits, or at shutdown, answers at once.
    /// </summary>
    public async Task<FeedPollResult> SearchAsync(
        PitCaller caller, TimeSpan wait, Func<CancellationToken, Task<PatientPage>> query, CancellationToken cancellationToken)
    {
        if (wait <= TimeSpan.Zero)
        {
            return new(await query(cancellationToken), false);
        }

        using var place = limits.TryEnter(caller.ClientId, caller.Organisation);
        if (place is null)
        {
            return new(await query(cancellationToken), false);
        }

        var started = time.GetTimestamp();
        var stopping = lifetime.ApplicationStopping;
        using var waitEnds = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        while (true)
        {
            // Subscribe before querying: a batch that commits after the query has started still wakes this waiter.
            using var subscription = hub.Subscribe(caller.ReadScope);
            var page = await query(cancellationToken);
            var remaining = wait - time.GetElapsedTime(started);
            if (page.Rows.Count > 0 || remaining <= TimeSpan.Zero || stopping.IsCancellationRequested)
            {
                return new(page, true);
            }

            try
            {
                await subscription.Changed.WaitAsync(remaining, time, waitEnds.Token);
            }
            catch (TimeoutException)
            {
                // The wait is over: the next round runs the query once more and answers whatever it finds.
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Shutting down: answer now, so the server need not wait for held requests.
            }
        }
    }
}
