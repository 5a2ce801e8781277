using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>PostgreSQL stopped in the middle of a load of submissions, then started again.</summary>
public sealed class PostgresOutageUnderLoadTests(PostgresServer database) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_database_outage_answers_503_with_retry_after_and_the_service_recovers_without_restart_losing_nothing()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Pit:Storage:Provider"] = "Postgres",
                ["Pit:Storage:ConnectionString"] = await database.CreateDatabaseAsync(),
                ["Pit:Processing:BatchSize"] = "16",
            },
            configure: logs.AddTo);
        var accepted = new ConcurrentBag<(string Fnr, Uri StatusUrl)>();
        var unavailable = new ConcurrentBag<(string? RetryAfter, string Body)>();
        var unexpected = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(_ => server.CreateClient()).ToArray();
        var load = clients.Select(client => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var fnr = TestPatients.NewFnr();
                using var response = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(fnr)));
                var body = await response.Content.ReadAsStringAsync();
                switch (response.StatusCode)
                {
                    case HttpStatusCode.Accepted:
                        accepted.Add((fnr, response.Content.Headers.ContentLocation!));
                        break;
                    case HttpStatusCode.ServiceUnavailable:
                        unavailable.Add((response.Headers.RetryAfter?.ToString(), body));
                        await Task.Delay(20);
                        break;
                    default:
                        unexpected.Add($"{(int)response.StatusCode}: {body}");
                        break;
                }
            }
        })).ToList();

        await WaitUntilAsync(() => accepted.Count >= 40);
        await database.StopAsync(immediate: true);
        try
        {
            await WaitUntilAsync(() => unavailable.Count >= 5);
            using var probe = server.CreateAnonymousClient();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await probe.GetAsync("health/ready")).StatusCode);
        }
        finally
        {
            await database.StartAsync();
        }

        var acceptedBeforeRecovery = accepted.Count;
        await WaitUntilAsync(() => accepted.Count >= acceptedBeforeRecovery + 40);
        await stop.CancelAsync();
        await Task.WhenAll(load);

        Assert.Empty(unexpected);
        Assert.All(unavailable, u =>
        {
            Assert.Equal("5", u.RetryAfter);
            PitApi.AssertOutcome(JsonNode.Parse(u.Body)!, "transient");
        });

        using var reader = server.CreateClient();
        foreach (var (_, statusUrl) in accepted)
        {
            var (status, _, _) = await reader.WaitProcessedAsync(statusUrl);
            Assert.Equal(HttpStatusCode.OK, status);
        }

        var stored = new List<string>();
        string? page = "v1/Patient?_count=50";
        while (page is not null)
        {
            var bundle = await reader.GetJsonAsync(page, HttpStatusCode.OK);
            stored.AddRange(bundle.Resources().Select(p => (string)p["identifier"]![0]!["value"]!));
            page = bundle.Link("next");
        }

        Assert.Equal(stored.Count, stored.Distinct().Count());
        Assert.Subset(stored.ToHashSet(), accepted.Select(a => a.Fnr).ToHashSet());
        AssertOneWarningPerTransition(logs);
        foreach (var client in clients)
        {
            client.Dispose();
        }
    }

    /// <summary>
    /// The outage shows in the log as one warning per store loop when it starts failing (event 60, exception type and
    /// message, no stack trace) and at most one when it succeeds again (event 61); nothing of the server's own at
    /// Warning or above carries a stack trace, however many retries and refused requests the outage caused.
    /// </summary>
    private static void AssertOneWarningPerTransition(CapturingLoggerProvider logs)
    {
        var server = logs.Entries.Where(e => e.Category.StartsWith("Pit.Server", StringComparison.Ordinal)).ToList();
        var started = server.Where(e => e.EventId == 60).GroupBy(e => e.Category).ToList();
        Assert.NotEmpty(started);
        Assert.All(started, g => Assert.Single(g));
        Assert.All(server.Where(e => e.EventId == 61).GroupBy(e => e.Category), g => Assert.Single(g));
        var processor = typeof(Pit.Server.Processing.SubmissionProcessor).FullName!;
        Assert.Single(server, e => e.EventId == 60 && e.Category == processor);
        Assert.Single(server, e => e.EventId == 61 && e.Category == processor);
        Assert.DoesNotContain(server, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning && e.Exception is not null);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting for the load to get there.");
            await Task.Delay(20);
        }
    }
}
