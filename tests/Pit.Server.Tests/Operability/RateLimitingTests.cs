using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

/// <summary>
/// Limits so slow (one permit per 1,000 s) that no token comes back during a test: what is allowed is exactly the
/// burst, with no dependence on timing.
/// </summary>
public sealed class RateLimitingTests
{
    private static Dictionary<string, string?> Limits(int burst, params (string Key, string Value)[] more)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pit:RateLimiting:PermitsPerSecond"] = "0.001",
            ["Pit:RateLimiting:Burst"] = burst.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in more)
        {
            settings[key] = value;
        }

        return settings;
    }

    [Fact]
    public async Task Over_its_limit_a_client_gets_429_with_retry_after_and_an_outcome_and_the_rejection_is_counted()
    {
        await using var server = await TestServer.StartAsync(Limits(burst: 2));
        var rejections = new ConcurrentQueue<string?>();
        using var listener = Listen(server, "pit.rate_limit.rejections", rejections);
        using var client = server.CreateClient();

        await AssertStatus(HttpStatusCode.OK, client.GetAsync("v1/Patient"));
        await AssertStatus(HttpStatusCode.OK, client.GetAsync("v1/Patient"));
        using var refused = await client.GetAsync("v1/Patient");

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        var retryAfter = int.Parse(Assert.Single(refused.Headers.GetValues("Retry-After")), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 1000);
        Assert.Equal("application/fhir+json", refused.Content.Headers.ContentType?.MediaType);
        PitApi.AssertOutcome(JsonNode.Parse(await refused.Content.ReadAsStringAsync())!, "throttled");
        Assert.Equal(["pit-test-client"], rejections);
    }

    [Fact]
    public async Task One_clients_flood_never_refuses_another_client_or_the_same_client_of_another_organisation()
    {
        await using var server = await TestServer.StartAsync(Limits(burst: 2));
        var credentials = new CredentialRecorder(server);
        using var flooder = credentials.Client("pit-flooder");
        var flood = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            using var response = await flooder.GetAsync("v1/Patient");
            return response.StatusCode;
        }));
        Assert.Equal(2, flood.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(18, flood.Count(s => s == HttpStatusCode.TooManyRequests));

        using var other = credentials.Client("pit-other-client");
        using var sameClientOtherOrganisation = credentials.Client("pit-flooder", TestServer.OtherOrganisation);
        await AssertStatus(HttpStatusCode.OK, other.GetAsync("v1/Patient"));
        await AssertStatus(HttpStatusCode.OK, sameClientOtherOrganisation.GetAsync("v1/Patient"));
    }

    [Fact]
    public async Task Health_metadata_docs_and_openapi_are_never_limited_even_for_a_client_over_its_limit()
    {
        await using var server = await TestServer.StartAsync(Limits(burst: 1));
        using var client = server.CreateClient();
        await AssertStatus(HttpStatusCode.OK, client.GetAsync("v1/Patient"));
        await AssertStatus(HttpStatusCode.TooManyRequests, client.GetAsync("v1/Patient"));

        for (var i = 0; i < 5; i++)
        {
            await AssertStatus(HttpStatusCode.OK, client.GetAsync("v1/metadata"));
            await AssertStatus(HttpStatusCode.OK, client.GetAsync("health/live"));
            await AssertStatus(HttpStatusCode.OK, client.GetAsync("health/ready"));
            await AssertNotStatus(HttpStatusCode.TooManyRequests, client.GetAsync("docs"));
            await AssertNotStatus(HttpStatusCode.TooManyRequests, client.GetAsync("openapi/v1.json"));
        }
    }

    [Fact]
    public async Task A_client_id_override_gives_that_client_its_own_limit()
    {
        await using var server = await TestServer.StartAsync(Limits(burst: 1, ("Pit:RateLimiting:Clients:pit-big-client:Burst", "4")));
        var credentials = new CredentialRecorder(server);
        using var big = credentials.Client("pit-big-client");
        using var small = credentials.Client("pit-small-client");

        for (var i = 0; i < 4; i++)
        {
            await AssertStatus(HttpStatusCode.OK, big.GetAsync("v1/Patient"));
        }

        await AssertStatus(HttpStatusCode.TooManyRequests, big.GetAsync("v1/Patient"));
        await AssertStatus(HttpStatusCode.OK, small.GetAsync("v1/Patient"));
        await AssertStatus(HttpStatusCode.TooManyRequests, small.GetAsync("v1/Patient"));
    }

    [Fact]
    public async Task With_rate_limiting_disabled_no_request_is_refused()
    {
        await using var server = await TestServer.StartAsync(Limits(burst: 1, ("Pit:RateLimiting:Enabled", "false")));
        using var client = server.CreateClient();

        for (var i = 0; i < 5; i++)
        {
            await AssertStatus(HttpStatusCode.OK, client.GetAsync("v1/Patient"));
        }
    }

    [Theory]
    [InlineData("Pit:RateLimiting:PermitsPerSecond", "0")]
    [InlineData("Pit:RateLimiting:Burst", "0")]
    [InlineData("Pit:RateLimiting:Clients:someone:PermitsPerSecond", "-5")]
    public async Task Impossible_limits_stop_the_server_at_start_up(string key, string value)
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(key[..key.LastIndexOf(':')], failure.Message, StringComparison.Ordinal);
    }

    private static MeterListener Listen(TestServer server, string instrument, ConcurrentQueue<string?> clientIds)
    {
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var listener = new MeterListener
        {
            InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == PitMetrics.MeterName && ReferenceEquals(i.Meter.Scope, factory) && i.Name == instrument)
                {
                    l.EnableMeasurementEvents(i);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "client_id")
                {
                    clientIds.Enqueue(tag.Value as string);
                }
            }
        });
        listener.Start();
        return listener;
    }

    private static async Task AssertStatus(HttpStatusCode expected, Task<HttpResponseMessage> send)
    {
        using var response = await send;
        Assert.True(expected == response.StatusCode, $"{response.RequestMessage?.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}");
    }

    private static async Task AssertNotStatus(HttpStatusCode unexpected, Task<HttpResponseMessage> send)
    {
        using var response = await send;
        Assert.NotEqual(unexpected, response.StatusCode);
    }
}
