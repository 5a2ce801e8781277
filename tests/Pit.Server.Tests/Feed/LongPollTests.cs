using System.Net;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Feed;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Feed;

public sealed class LongPollTests
{
    private static readonly TimeSpan Visibility = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task A_waiting_search_answers_with_a_Patient_submitted_after_it_started_waiting_within_a_second_of_visibility()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        var first = await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        var polling = client.GetPreferringAsync(LongPolls.After((string)first["meta"]!["lastUpdated"]!), "wait=20");
        await server.WaitersAsync(1);
        Assert.False(polling.IsCompleted);
        var (status, _, _) = await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Later")));
        Assert.Equal(HttpStatusCode.OK, status);

        Assert.Same(polling, await Task.WhenAny(polling, Task.Delay(Visibility)));
        var answer = await polling;
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal("wait=20", answer.PreferenceApplied);
        var patient = Assert.Single(answer.Body.Resources());
        Assert.Equal("Later", (string?)patient["name"]![0]!["family"]);
        await server.WaitersAsync(0);
    }

    [Fact]
    public async Task A_wait_that_runs_out_answers_an_empty_searchset_Bundle_and_the_proof_checked_on_arrival_does_not_expire_meanwhile()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Auth:DPoP:MaxAgeSeconds"] = "10" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var client = server.CreateClient();
        time.SetUtcNow(DateTimeOffset.UtcNow); // proofs are checked against this clock

        var polling = client.GetPreferringAsync("v1/Patient?_lastUpdated=gt2024-01-01T00:00Z", "wait=25");
        await server.WaitersAsync(1);

        // Answered when 25 s have passed since arrival, well past the proof's 10 s, and not before.
        var took = await time.AdvanceUntilAnsweredAsync(polling);
        Assert.InRange(took, 25, 26);
        var answer = await polling;
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal("Bundle", (string?)answer.Body["resourceType"]);
        Assert.Equal("searchset", (string?)answer.Body["type"]);
        Assert.Empty(answer.Body.Resources());
        Assert.Null(answer.Body.Link("next"));
        Assert.Equal("wait=25", answer.PreferenceApplied);
    }

    [Fact]
    public async Task A_wait_above_the_configured_maximum_is_shortened_to_it()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Feed:MaxWait"] = "00:00:02" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var client = server.CreateClient();
        time.SetUtcNow(DateTimeOffset.UtcNow);

        var polling = client.GetPreferringAsync("v1/Patient?_lastUpdated=gt2024-01-01T00:00Z", "wait=3600");
        await server.WaitersAsync(1);

        Assert.InRange(await time.AdvanceUntilAnsweredAsync(polling), 2, 3);
        var answer = await polling;
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal("wait=2", answer.PreferenceApplied);
        Assert.Empty(answer.Body.Resources());
    }

    [Fact]
    public async Task A_search_that_finds_something_is_answered_at_once_whatever_the_wait()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        var answer = await client.GetPreferringAsync("v1/Patient?_lastUpdated=gt2024-01-01T00:00Z", "wait=30").WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Single(answer.Body.Resources());
    }

    [Fact]
    public async Task A_client_over_its_waiter_limit_is_answered_at_once_while_other_clients_still_wait()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Feed:MaxWaitersPerClient"] = "2" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var client = server.CreateClient();
        using var other = server.CreateClient(TestServer.OtherOrganisation);
        time.SetUtcNow(DateTimeOffset.UtcNow);
        const string Empty = "v1/Patient?_lastUpdated=gt2024-01-01T00:00Z";

        var held = new[] { client.GetPreferringAsync(Empty, "wait=10"), client.GetPreferringAsync(Empty, "wait=10") };
        await server.WaitersAsync(2);
        var over = await client.GetPreferringAsync(Empty, "wait=10").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.OK, over.Status);
        Assert.Null(over.PreferenceApplied);
        Assert.Empty(over.Body.Resources());

        var otherHeld = other.GetPreferringAsync(Empty, "wait=10");
        await server.WaitersAsync(3);
        Assert.All(held, h => Assert.False(h.IsCompleted));

        var all = Task.WhenAll(held.Append(otherHeld));
        await time.AdvanceUntilAnsweredAsync(all, maxSeconds: 15);
        var answers = await all;
        Assert.All(answers, a => Assert.Equal("wait=10", a.PreferenceApplied));
        await server.WaitersAsync(0);
        Assert.Equal(0, server.Services.GetRequiredService<FeedWaiterLimits>().Clients);
        Assert.Equal(0, server.Services.GetRequiredService<Pit.Server.Storage.FeedChangeHub>().Count);
    }

    [Fact]
    public async Task A_submission_of_another_organisation_does_not_answer_a_waiting_search()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        using var other = server.CreateClient(TestServer.OtherOrganisation);
        var first = await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        var polling = client.GetPreferringAsync(LongPolls.After((string)first["meta"]!["lastUpdated"]!), "wait=20");
        await server.WaitersAsync(1);
        await other.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Other"));
        await Task.Delay(200);
        Assert.False(polling.IsCompleted, "A waiting search was answered by another organisation's submission.");

        await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Mine"));
        var answer = await polling.WaitAsync(Visibility);
        Assert.Equal("Mine", (string?)Assert.Single(answer.Body.Resources())["name"]![0]!["family"]);
    }

    [Fact]
    public async Task A_malformed_wait_is_refused_under_strict_handling_and_ignored_with_a_warning_under_lenient()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        const string Empty = "v1/Patient?_lastUpdated=gt2024-01-01T00:00Z";

        var strict = await client.GetPreferringAsync(Empty, "wait=soon");
        Assert.Equal(HttpStatusCode.BadRequest, strict.Status);
        Assert.Contains("wait", PitApi.AssertOutcome(strict.Body, "invalid"), StringComparison.Ordinal);

        var lenient = await client.GetPreferringAsync(Empty, "handling=lenient, wait=soon").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(HttpStatusCode.OK, lenient.Status);
        Assert.Null(lenient.PreferenceApplied);
        var warning = lenient.Body["entry"]!.AsArray().Single(e => (string?)e!["search"]!["mode"] == "outcome")!["resource"]!;
        Assert.Contains("soon", (string?)warning["issue"]![0]!["diagnostics"], StringComparison.Ordinal);
    }
}
