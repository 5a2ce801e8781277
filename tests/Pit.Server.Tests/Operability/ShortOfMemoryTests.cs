using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

public sealed class ShortOfMemoryTests
{
    [Fact]
    public async Task An_out_of_memory_failure_is_answered_503_with_retry_after_and_an_outcome_not_500()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(configure: b =>
        {
            logs.AddTo(b);
            b.Services.DecorateStore<IPatientFeedStore>(store => new FailingFeedStore(store, () => new OutOfMemoryException()));
        });
        using var client = server.CreateClient();

        using var response = await client.GetAsync("v1/Patient/abc");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains("short of memory", PitApi.AssertOutcome(body, "transient"), StringComparison.Ordinal);
        Assert.DoesNotContain(logs.Entries, e => e.Level == LogLevel.Error && e.Category == "Pit.Server.Fhir.PitExceptionHandler");
    }
}
