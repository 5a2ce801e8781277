using System.Collections.Concurrent;
using System.Net;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Processing;

public sealed class CrashTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("pit-crash-").FullName;

    private static string ServerDll => typeof(PitApp).Assembly.Location;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task Submissions_accepted_before_a_kill_are_applied_once_after_restart()
    {
        var statusPaths = new List<string>();
        var people = Enumerable.Range(0, 40).Select(_ => TestPatients.NewFnr()).ToList();
        await using (var server = await ServerProcess.StartAsync(ServerDll, _data, new Dictionary<string, string?> { ["Pit:Processing:Enabled"] = "false" }))
        {
            using var client = server.CreateClient();
            foreach (var fnr in people)
            {
                statusPaths.Add((await client.SubmitAsync(TestPatients.Json(fnr))).PathAndQuery);
            }

            Assert.Equal(HttpStatusCode.Accepted, (await client.GetAsync(statusPaths[0])).StatusCode);
            await server.KillAsync();
        }

        await using var restarted = await ServerProcess.StartAsync(ServerDll, _data);
        using var after = restarted.CreateClient();
        foreach (var path in statusPaths)
        {
            var (status, _, _) = await after.WaitProcessedAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, status);
        }

        var all = await after.GetJsonAsync("v1/Patient?_count=50", HttpStatusCode.OK);
        var patients = all.Resources();
        Assert.Equal(people.Order(), patients.Select(p => (string)p["identifier"]![0]!["value"]!).Order());
        Assert.All(patients, p => Assert.Equal("1", (string?)p["meta"]!["versionId"]));
    }

    [Fact]
    public async Task Killing_the_server_under_load_loses_no_accepted_submission_and_applies_none_twice()
    {
        var accepted = new ConcurrentBag<(string Fnr, string StatusPath)>();
        var attempted = new ConcurrentBag<string>();
        await using (var server = await ServerProcess.StartAsync(ServerDll, _data))
        {
            using var client = server.CreateClient();
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

            Assert.True(accepted.Count >= 150, $"The load should have had 150 submissions accepted before the kill; got {accepted.Count}.");

            await server.KillAsync();
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        await using var restarted = await ServerProcess.StartAsync(ServerDll, _data);
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

        Assert.Equal(stored.Count, stored.Select(s => s.Fnr).Distinct().Count());
        Assert.All(stored, s => Assert.Equal("1", s.Version));
        Assert.Subset(stored.Select(s => s.Fnr).ToHashSet(), accepted.Select(a => a.Fnr).ToHashSet());
        Assert.Subset(attempted.ToHashSet(), stored.Select(s => s.Fnr).ToHashSet());
    }
}
