using System.Net;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

public sealed class ReadinessTests
{
    [Fact]
    public async Task Ready_fails_once_the_oldest_queued_submission_is_older_than_the_limit_while_live_stays_up()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Processing:Enabled"] = "false", ["Pit:Health:MaxQueueAge"] = "00:05:00" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var client = server.CreateClient();
        using var probe = server.CreateAnonymousClient();
        time.SetUtcNow(DateTimeOffset.UtcNow); // start-up took a while; proofs are checked against this clock
        await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));

        await AssertStatus(HttpStatusCode.OK, probe.GetAsync("health/ready"));
        time.Advance(TimeSpan.FromMinutes(4));
        await AssertStatus(HttpStatusCode.OK, probe.GetAsync("health/ready"));
        time.Advance(TimeSpan.FromMinutes(2));
        await AssertStatus(HttpStatusCode.ServiceUnavailable, probe.GetAsync("health/ready"));
        await AssertStatus(HttpStatusCode.OK, probe.GetAsync("health/live"));
    }

    [Fact]
    public async Task An_empty_queue_is_ready_however_much_time_passes()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Processing:Enabled"] = "false" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var probe = server.CreateAnonymousClient();

        time.Advance(TimeSpan.FromHours(1));

        await AssertStatus(HttpStatusCode.OK, probe.GetAsync("health/ready"));
    }

    private static async Task AssertStatus(HttpStatusCode expected, Task<HttpResponseMessage> send)
    {
        using var response = await send;
        Assert.True(expected == response.StatusCode, $"{response.RequestMessage?.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}");
    }
}
