using System.Collections.Concurrent;
using System.Net;
using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// The crash scenario every store must survive: a server process takes a load of submissions, is killed with
/// SIGKILL mid-load (or stopped another way, such as SIGTERM), and is started again over the same store. Every 202
/// must end applied, none twice, nothing answered 503 may be stored, and nothing may appear that was never sent (a
/// request cut by the stop may or may not have been stored).
/// </summary>
internal static class KillUnderLoad
{
    public static string ServerDll => typeof(PitApp).Assembly.Location;

    /// <param name="dataDirectory">The server's folder, kept across the restart.</param>
    /// <param name="settings">Server configuration for both runs.</param>
    /// <param name="stop">Stops the loaded server; SIGKILL by default.</param>
    public static async Task RunAsync(string dataDirectory, IDictionary<string, string?>? settings = null, Func<ServerProcess, Task>? stop = null)
    {
        var accepted = new ConcurrentBag<(string Fnr, string StatusPath)>();
        var refused = new ConcurrentBag<string>();
        var attempted = new ConcurrentBag<string>();
        await using (var server = await ServerProcess.StartAsync(ServerDll, dataDirectory, settings))
        {
            using var client = server.CreateClient();
            using var done = new CancellationTokenSource();
            var load = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
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
                        else if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                        {
                            refused.Add(fnr);
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
            await (stop ?? (s => s.KillAsync()))(server);
            await done.CancelAsync();
            await Task.WhenAll(load);
        }

        await using var restarted = await ServerProcess.StartAsync(ServerDll, dataDirectory, settings);
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
        Assert.Empty(refused.Intersect(stored.Select(s => s.Fnr)));
    }
}
