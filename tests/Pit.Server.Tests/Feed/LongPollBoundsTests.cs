using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Feed;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Feed;

/// <summary>Long polling's bounds, settings, shutdown and how it is advertised.</summary>
public sealed class LongPollBoundsTests
{
    private const string Empty = "v1/Patient?_lastUpdated=gt2024-01-01T00:00Z";

    [Fact]
    public async Task Searches_over_the_instance_wide_waiter_limit_are_answered_at_once_whatever_the_client()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Feed:MaxWaiters"] = "1" },
            configure: b => b.Services.AddSingleton<TimeProvider>(time));
        using var client = server.CreateClient();
        using var other = server.CreateClient(TestServer.OtherOrganisation);
        time.SetUtcNow(DateTimeOffset.UtcNow);

        var held = client.GetPreferringAsync(Empty, "wait=5");
        await server.WaitersAsync(1);
        var over = await other.GetPreferringAsync(Empty, "wait=5").WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(HttpStatusCode.OK, over.Status);
        Assert.Null(over.PreferenceApplied);
        Assert.False(held.IsCompleted);
        await time.AdvanceUntilAnsweredAsync(held);
        Assert.Equal("wait=5", (await held).PreferenceApplied);
    }

    [Fact]
    public async Task A_held_search_is_answered_at_once_when_the_server_shuts_down()
    {
        var server = await TestServer.StartAsync();
        try
        {
            using var client = server.CreateClient();
            var held = client.GetPreferringAsync(Empty, "wait=30");
            await server.WaitersAsync(1);

            var stopping = server.StopAsync();
            var answer = await held.WaitAsync(TimeSpan.FromSeconds(5));
            await stopping.WaitAsync(TimeSpan.FromSeconds(5));

            Assert.Equal(HttpStatusCode.OK, answer.Status);
            Assert.Empty(answer.Body.Resources());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("Pit:Feed:MaxWait", "00:00:31")]
    [InlineData("Pit:Feed:MaxWait", "-00:00:01")]
    [InlineData("Pit:Feed:MaxWaitersPerClient", "-1")]
    [InlineData("Pit:Feed:MaxWaiters", "-1")]
    public async Task A_bad_feed_setting_fails_start_up_naming_its_key(string key, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_long_polling_turned_off_a_wait_is_answered_at_once()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Feed:MaxWait"] = "00:00:00" });
        using var client = server.CreateClient();

        var answer = await client.GetPreferringAsync(Empty, "wait=30").WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Null(answer.PreferenceApplied);
    }

    [Fact]
    public async Task The_CapabilityStatement_and_the_OpenAPI_document_advertise_long_polling()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Feed:MaxWait"] = "00:00:20" });
        using var client = server.CreateClient();
        using var anonymous = server.CreateAnonymousClient();

        var statement = await client.GetJsonAsync("v1/metadata", HttpStatusCode.OK);
        var search = statement["rest"]![0]!["resource"]![0]!["interaction"]!.AsArray().Single(i => (string?)i!["code"] == "search-type")!;
        Assert.Contains("Prefer: wait=N", (string?)search["documentation"], StringComparison.Ordinal);
        Assert.Contains("at most 20", (string?)search["documentation"], StringComparison.Ordinal);

        var document = JsonNode.Parse(await anonymous.GetStringAsync("openapi/v1.json"))!;
        var get = document["paths"]!["/v1/Patient"]!["get"]!;
        var prefer = get["parameters"]!.AsArray().Single(p => (string?)p!["name"] == "Prefer")!;
        Assert.Equal("header", (string?)prefer["in"]);
        Assert.Contains("wait=N", (string?)prefer["description"], StringComparison.Ordinal);
        Assert.Contains("Pit:Feed:MaxWait", (string?)prefer["description"], StringComparison.Ordinal);
        Assert.NotNull(get["responses"]!["200"]!["headers"]!["Preference-Applied"]);
    }

    [Theory]
    [InlineData("wait=10", false, 10, null)]
    [InlineData("handling=lenient, wait=10", true, 10, null)]
    [InlineData("WAIT = \"7\"; ignored=1, wait=99", false, 7, null)]
    [InlineData("respond-async, handling=strict", false, null, null)]
    [InlineData("wait=99999999999999999999", false, int.MaxValue, null)]
    [InlineData("wait=-1", false, null, "-1")]
    [InlineData("wait=", false, null, "")]
    public void Prefer_takes_the_first_of_each_preference_and_flags_a_wait_that_is_not_a_number(
        string header, bool lenient, int? seconds, string? malformed)
    {
        var prefer = PreferHeader.Parse(header);

        Assert.Equal((lenient, seconds, malformed), (prefer.Lenient, prefer.WaitSeconds, prefer.MalformedWait));
        Assert.Equal(seconds is null ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(seconds.Value, 30)), prefer.Wait(TimeSpan.FromSeconds(30)));
    }
}
