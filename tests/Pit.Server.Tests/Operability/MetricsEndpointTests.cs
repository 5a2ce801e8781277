using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task After_real_traffic_the_scrape_endpoint_on_the_management_port_shows_every_instrument()
    {
        var text = await ScrapeAfterTrafficAsync();

        Assert.Contains("pit_requests_total{", text, StringComparison.Ordinal);
        Assert.Contains("http_route=\"/v1/Patient\"", text, StringComparison.Ordinal);
        Assert.Contains("http_response_status_code=\"429\"", text, StringComparison.Ordinal);
        Assert.Contains("pit_auth_failures_total{", text, StringComparison.Ordinal);
        Assert.Contains("reason=\"no_credentials\"", text, StringComparison.Ordinal);
        Assert.Contains("pit_queue_depth", text, StringComparison.Ordinal);
        Assert.Contains("pit_queue_oldest_age_seconds", text, StringComparison.Ordinal);
        Assert.Contains("pit_submissions_applied_total", text, StringComparison.Ordinal);
        Assert.Contains("pit_submissions_apply_failures_total", text, StringComparison.Ordinal);
        Assert.Contains("pit_submissions_visibility_lag_seconds_bucket", text, StringComparison.Ordinal);
        Assert.Contains("pit_dpop_replay_cache_entries", text, StringComparison.Ordinal);
        Assert.Contains("pit_dpop_replay_cache_capacity", text, StringComparison.Ordinal);
        Assert.Contains("pit_rate_limit_rejections_total{", text, StringComparison.Ordinal);
        Assert.Contains("client_id=\"pit-flooder\"", text, StringComparison.Ordinal);
        Assert.Contains("pit_submissions_commit_batch", text, StringComparison.Ordinal);
        Assert.Contains("pit_audit_backlog", text, StringComparison.Ordinal);
        Assert.Contains("pit_audit_dropped_total", text, StringComparison.Ordinal);
        Assert.Contains("pit_feed_waiters", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_audit_backlog_and_the_held_long_polls_are_gauges_on_the_scrape_endpoint()
    {
        var port = FreePort();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        StallingAuditStore? audit = null;
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Pit:Telemetry:Prometheus:Enabled"] = "true",
                ["Pit:Telemetry:Prometheus:Url"] = $"http://127.0.0.1:{port}",
            },
            configure: b => b.Services.DecorateStore<IAuditStore>(store => audit = new StallingAuditStore(store) { StallUntil = release.Task }));
        using var client = server.CreateClient();
        using var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        try
        {
            // The first read's audit write stalls (a store that takes no writes); the next reads' entries wait behind it.
            using (await client.GetAsync("v1/Patient"))
            {
            }

            await audit!.Stalled;
            for (var i = 0; i < 3; i++)
            {
                using (await client.GetAsync("v1/Patient"))
                {
                }
            }

            var trail = server.Services.GetRequiredService<Pit.Server.Audit.AuditTrail>();
            for (var i = 0; i < 500 && trail.Backlog != 4; i++)
            {
                await Task.Delay(10);
            }

            var polls = new[]
            {
                client.GetPreferringAsync("v1/Patient?_lastUpdated=gt2024-01-01T00:00Z", "wait=25"),
                client.GetPreferringAsync("v1/Patient?_lastUpdated=gt2024-01-01T00:00Z", "wait=25"),
            };
            await server.WaitersAsync(2);

            // The scrape shows the gauges; their values are read from this server's own meter, since tests running
            // in parallel put servers with a meter of the same name into this process (in production there is one).
            var scrape = await scraper.GetStringAsync("metrics");
            Assert.Contains("pit_feed_waiters{", scrape, StringComparison.Ordinal);
            Assert.Contains("pit_audit_backlog{", scrape, StringComparison.Ordinal);
            Assert.Contains("pit_audit_dropped_total{", scrape, StringComparison.Ordinal);
            Assert.Equal(2, Observe(server, "pit.feed.waiters"));
            Assert.Equal(4, Observe(server, "pit.audit.backlog"));
            Assert.Equal(0, Observe(server, "pit.audit.dropped"));

            await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr())));
            await Task.WhenAll(polls);
            release.TrySetResult();
            await server.WaitersAsync(0);
            Assert.Equal(0, Observe(server, "pit.feed.waiters"));
        }
        finally
        {
            release.TrySetResult();
        }
    }

    [Fact]
    public async Task The_public_address_never_serves_metrics_and_the_management_port_serves_nothing_else()
    {
        var port = FreePort();
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Telemetry:Prometheus:Enabled"] = "true",
            ["Pit:Telemetry:Prometheus:Url"] = $"http://127.0.0.1:{port}",
        });
        using var api = server.CreateAnonymousClient();
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };

        using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
        request.Headers.Host = $"127.0.0.1:{port}";
        using var viaApi = await api.SendAsync(request);
        using var apiOnManagement = await management.GetAsync("v1/metadata");
        using var healthOnManagement = await management.GetAsync("health/live");
        using var scrape = await management.GetAsync("metrics");

        Assert.Equal(HttpStatusCode.NotFound, viaApi.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, apiOnManagement.StatusCode);
        Assert.Equal(HttpStatusCode.OK, healthOnManagement.StatusCode);
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
    }

    [Fact]
    public async Task Without_configuration_there_is_no_scrape_endpoint()
    {
        await using var server = await TestServer.StartAsync();
        using var api = server.CreateAnonymousClient();

        using var response = await api.GetAsync("metrics");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    /// <summary>The current value of observable instrument <paramref name="name"/> of <paramref name="server"/>'s own meter.</summary>
    private static double Observe(TestServer server, string name)
    {
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var values = new List<double>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == name && ReferenceEquals(instrument.Meter.Scope, factory))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<int>((_, v, _, _) => values.Add(v));
        listener.SetMeasurementEventCallback<long>((_, v, _, _) => values.Add(v));
        listener.SetMeasurementEventCallback<double>((_, v, _, _) => values.Add(v));
        listener.Start();
        listener.RecordObservableInstruments();
        return Assert.Single(values);
    }



    /// <summary>
    /// The real scrape of a server that has seen every kind of traffic the instruments count: a processed submission
    /// (one apply failing first), a search, an anonymous request, and a client over its rate limit.
    /// </summary>
    /// <remarks><paramref name="storeSettings"/> choose another store (PostgreSQL, for its Npgsql metrics).</remarks>
    internal static async Task<string> ScrapeAfterTrafficAsync(IDictionary<string, string?>? storeSettings = null)
    {
        var port = FreePort();
        var settings = new Dictionary<string, string?>
        {
            ["Pit:Telemetry:Prometheus:Enabled"] = "true",
            ["Pit:Telemetry:Prometheus:Url"] = $"http://127.0.0.1:{port}",
            ["Pit:RateLimiting:Clients:pit-flooder:Burst"] = "1",
            ["Pit:RateLimiting:Clients:pit-flooder:PermitsPerSecond"] = "0.001",
        };
        foreach (var (key, value) in storeSettings ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        await using var server = await TestServer.StartAsync(
            settings,
            configure: b => b.Services.DecorateStore<ISubmissionQueueStore>(store => new FailingQueueStore(store) { AppliesToFail = 1 }));
        var credentials = new CredentialRecorder(server);
        using var client = credentials.Client();
        using var flooder = credentials.Client("pit-flooder");
        using var anonymous = server.CreateAnonymousClient();

        await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr())));
        using (await client.GetAsync("v1/Patient"))
        using (await anonymous.GetAsync("v1/Patient"))
        using (await flooder.GetAsync("v1/Patient"))
        using (var limited = await flooder.GetAsync("v1/Patient"))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        }

        using var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        return await scraper.GetStringAsync("metrics");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
