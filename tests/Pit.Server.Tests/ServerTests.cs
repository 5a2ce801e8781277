using System.Net;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class ServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Metadata_is_a_capability_statement_describing_patient_read_create_and_search()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        var statement = await client.GetJsonAsync("v1/metadata", HttpStatusCode.OK);
        Assert.Equal("CapabilityStatement", (string?)statement["resourceType"]);
        Assert.Equal("4.0.1", (string?)statement["fhirVersion"]);
        var patient = statement["rest"]![0]!["resource"]![0]!;
        Assert.Equal("Patient", (string?)patient["type"]);
        Assert.Equal(["read", "create", "search-type"], patient["interaction"]!.AsArray().Select(i => (string?)i!["code"]));
        Assert.Equal(["_lastUpdated", "_count", "_sort", "cursor"], patient["searchParam"]!.AsArray().Select(i => (string?)i!["name"]));
    }

    [Fact]
    public async Task Health_endpoints_report_live_and_ready()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/ready")).StatusCode);
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_with_an_operation_outcome()
    {
        using var client = fixture.Server.CreateClient();
        PitApi.AssertOutcome(await client.GetJsonAsync("v1/Observation", HttpStatusCode.NotFound), "not-found");
        var (status, body) = await client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, "v1/Patient"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, status);
        PitApi.AssertOutcome(body, "not-supported");
    }
}
