using System.Net;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class FailureTests
{
    [Fact]
    public async Task An_unexpected_failure_is_a_500_outcome_with_a_correlation_id_and_no_stack_trace()
    {
        await using var server = await TestServer.StartAsync(configure: b => b.Services.DecorateStore<IPatientFeedStore>(store => new FailingFeedStore(store)));
        using var client = server.CreateClient();

        var body = await client.GetJsonAsync("v1/Patient/abc", HttpStatusCode.InternalServerError);

        var text = PitApi.AssertOutcome(body, "exception");
        Assert.Matches("Correlation id: [0-9a-f]{32}", text);
        Assert.DoesNotContain("simulated", body.ToJsonString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(" at ", body.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_the_store_cannot_take_a_submission_the_answer_is_503_with_retry_after_never_202()
    {
        await using var server = await TestServer.StartAsync(configure: b => b.Services.DecorateStore<ISubmissionQueueStore>(store => new FailingQueueStore(store) { WritesToFail = int.MaxValue }));
        using var client = server.CreateClient();

        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(TestPatients.NewFnr())));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("5", response.Headers.GetValues("Retry-After").Single());
        var text = PitApi.AssertOutcome(System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!, "transient");
        Assert.Matches("Correlation id: [0-9a-f]{32}", text);
    }

    [Fact]
    public async Task Links_use_the_configured_public_base_url()
    {
        // The client talks to the public name (as behind a proxy) while the connection goes to the loopback port,
        // so DPoP proofs carry the public URL the server must check them against.
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:PublicBaseUrl"] = "http://pit.example.org/" });
        using var client = server.CreateClient(connectTo: server.BaseAddress, baseAddress: new Uri("http://pit.example.org/"));
        var statusUrl = await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        Assert.StartsWith("http://pit.example.org/v1/submissions/", statusUrl.ToString());
        var bundle = await client.GetJsonAsync("v1/Patient", HttpStatusCode.OK);
        Assert.Equal("http://pit.example.org/v1/Patient?_count=20&_sort=_lastUpdated", bundle.Link("self"));
    }
}
