using System.Net;
using System.Text.Json.Nodes;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

public sealed class CorrelationIdTests
{
    [Fact]
    public async Task A_well_formed_correlation_id_from_the_client_is_returned_unchanged()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateAnonymousClient();

        using var response = await SendAsync(client, "v1/metadata", "order-42_retry.1");

        Assert.Equal("order-42_retry.1", Header(response));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("has spaces")]
    [InlineData("semi;colon")]
    [InlineData("a/b")]
    [InlineData("12345678901234567890123456789012345678901234567890123456789012345")]
    public async Task A_missing_or_malformed_correlation_id_is_replaced_by_the_trace_id(string? sent)
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateAnonymousClient();

        using var response = await SendAsync(client, "v1/Patient", sent);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Matches("^[0-9a-f]{32}$", Header(response));
    }

    [Fact]
    public async Task A_500_outcome_carries_the_same_correlation_id_as_the_response_header_and_the_log()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(configure: b =>
        {
            logs.AddTo(b);
            b.Services.DecorateStore<IPatientFeedStore>(store => new FailingFeedStore(store));
        });
        using var client = server.CreateClient();

        using var response = await SendAsync(client, "v1/Patient/abc", "trace-me-500");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("trace-me-500", Header(response));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains("Correlation id: trace-me-500.", PitApi.AssertOutcome(body, "exception"));
        var failure = Assert.Single(logs.Entries, e => e.Category == "Pit.Server.Fhir.PitExceptionHandler");
        Assert.Equal("trace-me-500", failure.ScopeValues["CorrelationId"]);
    }

    [Fact]
    public async Task Every_log_line_written_while_a_request_runs_carries_its_correlation_id()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(configure: logs.AddTo);
        using var client = server.CreateAnonymousClient();

        // Bearer is refused; the authentication handler logs the refusal.
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/Patient");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer abc");
        request.Headers.Add("X-Correlation-Id", "one-request");
        using var response = await client.SendAsync(request);

        // The host's "Request starting/finished" lines and Kestrel's connection lines are written outside the
        // middleware pipeline; they carry the trace id, which is the correlation id when the client sends none.
        var lines = logs.Entries
            .Where(e => e.ScopeValues.ContainsKey("RequestId")
                && !e.Category.StartsWith("Microsoft.AspNetCore.Hosting", StringComparison.Ordinal)
                && !e.Category.StartsWith("Microsoft.AspNetCore.Server.Kestrel", StringComparison.Ordinal))
            .ToList();
        Assert.True(lines.Count >= 3, $"Only {lines.Count} lines were written inside the request.");
        Assert.Contains(lines, e => e.Text.Contains("Bearer is not accepted", StringComparison.Ordinal));
        Assert.Contains(lines, e => e.Category.StartsWith("Microsoft.AspNetCore.Routing", StringComparison.Ordinal));
        Assert.All(lines, e => Assert.Equal("one-request", e.ScopeValues.GetValueOrDefault("CorrelationId")));
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, string url, string? correlationId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (correlationId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Correlation-Id", correlationId);
        }

        return await client.SendAsync(request);
    }

    private static string Header(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues("X-Correlation-Id"));
}
