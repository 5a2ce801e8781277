using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// The one retry policy of the store loops (<see cref="RetryBackoff"/>) and the PostgreSQL engine's second attempt on a
/// fresh connection (<see cref="PostgresRetry"/>).
/// </summary>
public sealed class RetryBackoffTests
{
    private static readonly RetryBackoff Policy = new(TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5));

    [Fact]
    public void The_wait_doubles_from_the_first_delay_with_each_failure_up_to_the_cap()
    {
        var waits = Enumerable.Range(1, 8).Select(f => Policy.DelayAfter(f).TotalMilliseconds);

        Assert.Equal([200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000], waits);
    }

    [Fact]
    public void The_cap_holds_for_any_number_of_failures_and_any_first_delay()
    {
        var hours = new RetryBackoff(TimeSpan.FromHours(1), TimeSpan.FromDays(2));

        Assert.Equal(TimeSpan.FromSeconds(5), Policy.DelayAfter(int.MaxValue));
        Assert.Equal(TimeSpan.FromHours(32), hours.DelayAfter(6));
        Assert.Equal(TimeSpan.FromDays(2), hours.DelayAfter(7));
        Assert.Equal(TimeSpan.FromDays(2), hours.DelayAfter(int.MaxValue));
    }

    [Fact]
    public void A_policy_without_a_positive_first_delay_or_with_a_cap_below_it_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryBackoff(TimeSpan.Zero, TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RetryBackoff(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Policy.DelayAfter(0));
    }

    [Fact]
    public void Each_loop_keeps_the_first_delay_and_cap_it_had_before_the_policy_was_shared()
    {
        Assert.Equal((TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(30)), (RetryBackoff.Apply.First, RetryBackoff.Apply.Max));
        Assert.Equal((TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(5)), (RetryBackoff.AuditWrites.First, RetryBackoff.AuditWrites.Max));
        Assert.Equal((TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10)), (RetryBackoff.Listen.First, RetryBackoff.Listen.Max));
        Assert.Equal((TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(10)), (RetryBackoff.Sequencer.First, RetryBackoff.Sequencer.Max));
    }

    [Fact]
    public async Task Waiting_after_a_failure_ends_once_the_clock_has_moved_by_its_delay_and_not_before()
    {
        var time = new FakeTimeProvider();

        var wait = Policy.WaitAsync(3, time, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(799));
        Assert.False(wait.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        await wait.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Waiting_ends_at_once_when_the_loop_is_stopped()
    {
        using var stopping = new CancellationTokenSource();

        var wait = Policy.WaitAsync(1, new FakeTimeProvider(), stopping.Token);
        await stopping.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
    }

    [Fact]
    public async Task A_transient_failure_is_tried_once_more_and_the_second_answer_counts()
    {
        await using var dataSource = NpgsqlDataSource.Create(UnreachableDatabase());
        var attempts = 0;

        var answer = await dataSource.OnceMoreOnFreshConnectionAsync(async ct =>
        {
            if (++attempts == 1)
            {
                // A real transient failure: nothing listens on the port.
                await using var connection = await dataSource.OpenConnectionAsync(ct);
            }

            return 42;
        }, CancellationToken.None);

        Assert.Equal((2, 42), (attempts, answer));
    }

    [Fact]
    public async Task A_failure_that_repeats_on_the_fresh_connection_reaches_the_caller_after_two_attempts()
    {
        await using var dataSource = NpgsqlDataSource.Create(UnreachableDatabase());
        var attempts = 0;

        var failure = await Assert.ThrowsAsync<NpgsqlException>(() => dataSource.OnceMoreOnFreshConnectionAsync(async ct =>
        {
            attempts++;
            await using var connection = await dataSource.OpenConnectionAsync(ct);
            return 0;
        }, CancellationToken.None));

        Assert.True(failure.IsTransient);
        Assert.Equal(2, attempts);
    }

    [Fact]
    public async Task A_failure_that_is_not_transient_is_not_repeated()
    {
        await using var dataSource = NpgsqlDataSource.Create(UnreachableDatabase());
        var attempts = 0;

        await Assert.ThrowsAsync<NpgsqlException>(() => dataSource.OnceMoreOnFreshConnectionAsync<int>(_ =>
        {
            attempts++;
            throw new NpgsqlException("not a connection problem");
        }, CancellationToken.None));

        Assert.Equal(1, attempts);
    }

    [Fact]
    public async Task A_cancelled_caller_gets_no_second_attempt()
    {
        await using var dataSource = NpgsqlDataSource.Create(UnreachableDatabase());
        using var cancelled = new CancellationTokenSource();
        var attempts = 0;

        await Assert.ThrowsAsync<NpgsqlException>(() => dataSource.OnceMoreOnFreshConnectionAsync<int>(async _ =>
        {
            attempts++;
            await cancelled.CancelAsync();
            await using var connection = await dataSource.OpenConnectionAsync(CancellationToken.None);
            return 0;
        }, cancelled.Token));

        Assert.Equal(1, attempts);
    }

    /// <summary>A loopback port that was free a moment ago, so connecting is refused at once.</summary>
    private static string UnreachableDatabase()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return $"Host=127.0.0.1;Port={port};Username=pit;Database=pit;Timeout=5";
    }
}
