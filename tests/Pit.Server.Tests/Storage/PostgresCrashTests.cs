using System.Collections.Concurrent;
using System.Net;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Storage;

/// <summary>A server process on PostgreSQL killed with SIGKILL under load, then started again over the same database.</summary>
public sealed class PostgresCrashTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("pit-pg-crash-").FullName;

    private static string ServerDll => typeof(PitApp).Assembly.Location;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task Killing_a_server_under_load_loses_no_accepted_submission_and_applies_none_twice()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await server.CreateDatabaseAsync(),
            ["Pit:Processing:BatchSize"] = "16",
        };
        var accepted = new ConcurrentBag<(string Fnr, string StatusPath)>();
        var attempted = new ConcurrentBag<string>();
        await using (var process = await ServerProcess.StartAsync(ServerDll, _data, settings))
        {
            using var client = process.CreateClient();
            using var stop = new CancellationTokenSource();
            var load = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    var fnr = TestPatients.NewFnr();
                    attempted.Add(fnr);
                    try
                    {
                        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(fnr)));
                        if (response.StatusCode == HttpStatusCode.Accepted)
                        {
                            accepted.Add((fnr, response.Content.Headers.ContentLocation!.PathAndQuery));
                        }
                    }
                    catch (HttpRequestException)
                    {
                        return;
                    }
                }
            })).ToList();

            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (accepted.Count < 150 && DateTime.UtcNow < deadline && load.TrueForAll(t => !t.IsCompleted))
            {
                await Task.Delay(10);
            }

            Assert.True(accepted.Count >= 150, $"150 submissions should have been accepted before the kill; got {accepted.Count}.");
            await process.KillAsync();
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        await using var restarted = await ServerProcess.StartAsync(ServerDll, _data, settings);
        using var after = restarted.CreateClient();
        foreach (var (_, path) in accepted)
        {
            var (status, _, _) = await after.WaitProcessedAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, status);
        }

        var stored = new List<(string Fnr, string Version)>();
        string? page = "v1/Patient?_count=50";
        while (page is not null)
        {
            var bundle = await after.GetJsonAsync(page, HttpStatusCode.OK);
            stored.AddRange(bundle.Resources().Select(p => ((string)p["identifier"]![0]!["value"]!, (string)p["meta"]!["versionId"]!)));
            page = bundle.Link("next");
        }

        // Every 202 is stored, nothing twice, nothing that was never sent (a request cut by the kill may or may not be).
        Assert.Equal(stored.Count, stored.Select(s => s.Fnr).Distinct().Count());
        Assert.All(stored, s => Assert.Equal("1", s.Version));
        Assert.Subset(stored.Select(s => s.Fnr).ToHashSet(), accepted.Select(a => a.Fnr).ToHashSet());
        Assert.Subset(attempted.ToHashSet(), stored.Select(s => s.Fnr).ToHashSet());
    }
}
