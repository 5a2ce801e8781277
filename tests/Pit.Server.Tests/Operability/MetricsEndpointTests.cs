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
        var port = FreePort();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Pit:Telemetry:Prometheus:Enabled"] = "true",
                ["Pit:Telemetry:Prometheus:Url"] = $"http://127.0.0.1:{port}",
                ["Pit:RateLimiting:Clients:pit-flooder:Burst"] = "1",
                ["Pit:RateLimiting:Clients:pit-flooder:PermitsPerSecond"] = "0.001",
            },
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
        var text = await scraper.GetStringAsync("metrics");

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
        Assert.Contains("pit_rate_limit_rejections_total{", text, StringComparison.Ordinal);
        Assert.Contains("client_id=\"pit-flooder\"", text, StringComparison.Ordinal);
        Assert.Contains("pit_submissions_commit_batch", text, StringComparison.Ordinal);
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
