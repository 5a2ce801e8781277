using Microsoft.Extensions.Time.Testing;
using Pit.Server.Patients;

namespace Pit.Server.Tests.Patients;

/// <summary>The server-wide budget for request bodies being read: its bound, its waiting line, its clock.</summary>
public sealed class RequestBodyBudgetTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(2);

    private readonly FakeTimeProvider _time = new();

    [Fact]
    public async Task Shares_up_to_the_budget_are_granted_at_once_and_their_bytes_come_back_when_disposed()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);

        var first = await budget.AcquireAsync(600, CancellationToken.None);
        var second = await budget.AcquireAsync(400, CancellationToken.None);

        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Equal(1000, budget.InUse);
        first.Dispose();
        Assert.Equal(400, budget.InUse);
        second.Dispose();
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task A_request_that_does_not_fit_waits_and_gets_its_share_when_bytes_come_back_within_the_wait()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);
        var held = await budget.AcquireAsync(800, CancellationToken.None);

        var waiting = budget.AcquireAsync(300, CancellationToken.None).AsTask();
        _time.Advance(Wait - TimeSpan.FromMilliseconds(1));

        Assert.False(waiting.IsCompleted);
        Assert.Equal(1, budget.Waiting);
        held!.Dispose();
        using var share = await waiting;
        Assert.NotNull(share);
        Assert.Equal(300, budget.InUse);
        Assert.Equal(0, budget.Waiting);
    }

    [Fact]
    public async Task A_request_that_does_not_fit_within_the_wait_is_refused_and_holds_nothing()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);
        using var held = await budget.AcquireAsync(800, CancellationToken.None);

        var waiting = budget.AcquireAsync(300, CancellationToken.None).AsTask();
        _time.Advance(Wait);

        Assert.Null(await waiting);
        Assert.Equal(800, budget.InUse);
        Assert.Equal(0, budget.Waiting);
    }

    [Fact]
    public async Task With_no_wait_a_request_that_does_not_fit_is_refused_at_once()
    {
        var budget = new RequestBodyBudget(1000, TimeSpan.Zero, _time);
        using var held = await budget.AcquireAsync(800, CancellationToken.None);

        var refused = budget.AcquireAsync(300, CancellationToken.None);

        Assert.True(refused.IsCompleted);
        Assert.Null(await refused);
        Assert.Equal(800, budget.InUse);
    }

    [Fact]
    public async Task Waiting_requests_are_served_in_arrival_order_so_a_large_body_is_not_overtaken_by_small_ones()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);
        var held = await budget.AcquireAsync(500, CancellationToken.None);

        var large = budget.AcquireAsync(900, CancellationToken.None).AsTask();
        var small = budget.AcquireAsync(100, CancellationToken.None).AsTask();

        // 500 bytes are free, enough for the small one, but it queues behind the large one.
        Assert.False(small.IsCompleted);
        held!.Dispose();
        using var largeShare = await large;
        Assert.NotNull(largeShare);
        using var smallShare = await small;
        Assert.NotNull(smallShare);
        Assert.Equal(1000, budget.InUse);
    }

    [Fact]
    public async Task A_share_larger_than_the_budget_takes_the_whole_budget_so_one_body_is_always_readable()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);

        using (var share = await budget.AcquireAsync(921_600, CancellationToken.None))
        {
            Assert.Equal(1000, share!.Bytes);
            Assert.Equal(1000, budget.InUse);
            var next = budget.AcquireAsync(1, CancellationToken.None).AsTask();
            _time.Advance(Wait);
            Assert.Null(await next);
        }

        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task A_cancelled_waiting_request_holds_nothing_and_lets_the_one_behind_it_in()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);
        using var held = await budget.AcquireAsync(500, CancellationToken.None);
        using var cancel = new CancellationTokenSource();

        var large = budget.AcquireAsync(900, cancel.Token).AsTask();
        var small = budget.AcquireAsync(400, CancellationToken.None).AsTask();
        Assert.False(small.IsCompleted);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => large);
        using var smallShare = await small;
        Assert.NotNull(smallShare);
        Assert.Equal(900, budget.InUse);
        Assert.Equal(0, budget.Waiting);
    }

    [Fact]
    public async Task An_already_cancelled_request_takes_nothing()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => budget.AcquireAsync(100, new CancellationToken(canceled: true)).AsTask());

        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task Disposing_a_share_twice_gives_its_bytes_back_once()
    {
        var budget = new RequestBodyBudget(1000, Wait, _time);
        using var other = await budget.AcquireAsync(300, CancellationToken.None);
        var share = await budget.AcquireAsync(700, CancellationToken.None);

        share!.Dispose();
        share.Dispose();

        Assert.Equal(300, budget.InUse);
        var whole = budget.AcquireAsync(1000, CancellationToken.None).AsTask();
        _time.Advance(Wait);
        Assert.Null(await whole);
    }
}
