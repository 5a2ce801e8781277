using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// The restore scenario every store must pass: a backup is taken with the documented command while a server keeps
/// answering POSTs with 202, and a server started on the restored copy then shows a consistent store. Every 202
/// answered before the backup began is in the backup; every submission the backup holds was answered 202 and is
/// applied (queued ones after the restore); the feed holds exactly those submissions' Patients, once each, in
/// strictly increasing <c>lastUpdated</c>; a cursor from before the backup still pages; new POSTs still work.
/// </summary>
internal static class BackupUnderLoad
{
    /// <param name="dataDirectory">The original server's folder.</param>
    /// <param name="settings">The original server's configuration.</param>
    /// <param name="backup">Takes the backup while the load runs (the original server is passed).</param>
    /// <param name="restore">Restores the backup and returns the submission ids it holds, read from the restored store.</param>
    /// <param name="restoredDataDirectory">The restored server's folder.</param>
    /// <param name="restoredSettings">The restored server's configuration.</param>
    public static async Task RunAsync(
        string dataDirectory, IDictionary<string, string?>? settings, Func<ServerProcess, Task> backup,
        Func<Task<IReadOnlySet<Guid>>> restore, string restoredDataDirectory, IDictionary<string, string?>? restoredSettings)
    {
        var accepted = new ConcurrentDictionary<Guid, (string Fnr, bool BeforeBackup)>();
        var backupBegan = 0;
        string cursorPage;
        int acceptedWhenBackupBegan, acceptedWhenBackupEnded;
        await using (var server = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, dataDirectory, settings))
        {
            using var client = server.CreateClient();
            using var done = new CancellationTokenSource();
            var load = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
                {
                    var fnr = TestPatients.NewFnr();
                    using var response = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(fnr)));
                    // Read after the answer arrived: false means it arrived before the backup began.
                    var before = Volatile.Read(ref backupBegan) == 0;
                    Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
                    accepted[SubmissionId(response)] = (fnr, before);
                }
            })).ToList();

            await WaitForAsync(() => accepted.Count >= 100, load, "100 submissions accepted before the backup");
            var firstPage = await client.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK);
            cursorPage = new Uri(firstPage.Link("next") ?? throw new InvalidOperationException("No next link yet.")).PathAndQuery;

            acceptedWhenBackupBegan = accepted.Count;
            Volatile.Write(ref backupBegan, 1);
            await backup(server);
            acceptedWhenBackupEnded = accepted.Count;
            await WaitForAsync(() => accepted.Count >= acceptedWhenBackupEnded + 30, load, "30 more submissions accepted after the backup");
            await done.CancelAsync();
            await Task.WhenAll(load);
        }

        Assert.True(acceptedWhenBackupEnded > acceptedWhenBackupBegan,
            $"POSTs should have been accepted while the backup ran; {acceptedWhenBackupBegan} before and {acceptedWhenBackupEnded} after it.");
        var inBackup = await restore();
        var acceptedBefore = accepted.Where(a => a.Value.BeforeBackup).Select(a => a.Key).ToHashSet();
        Assert.Subset(inBackup.ToHashSet(), acceptedBefore);
        Assert.Subset(accepted.Keys.ToHashSet(), inBackup.ToHashSet());
        Assert.True(inBackup.Count < accepted.Count, "Submissions accepted after the backup should not be in it.");

        await using var restored = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, restoredDataDirectory, restoredSettings);
        using var after = restored.CreateClient();
        foreach (var id in inBackup)
        {
            var (status, _, _) = await after.WaitProcessedAsync(new Uri($"v1/submissions/{id:D}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, status);
        }

        var missing = accepted.Keys.First(id => !inBackup.Contains(id));
        using (var absent = await after.GetAsync($"v1/submissions/{missing:D}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, absent.StatusCode);
        }

        Assert.Single((await after.GetJsonAsync(cursorPage, HttpStatusCode.OK)).Resources());
        var newcomer = TestPatients.NewFnr();
        await after.SubmitAndReadAsync(TestPatients.Json(newcomer));

        var feed = await ReadFeedAsync(after);
        var expected = inBackup.Select(id => accepted[id].Fnr).Append(newcomer).Order().ToList();
        Assert.Equal(expected, feed.Select(p => p.Fnr).Order().ToList());
        Assert.All(feed, p => Assert.Equal("1", p.Version));
        Assert.Equal(newcomer, feed[^1].Fnr);
        for (var i = 1; i < feed.Count; i++)
        {
            Assert.True(feed[i].LastUpdated > feed[i - 1].LastUpdated, $"lastUpdated must increase strictly along the feed (entry {i}).");
        }
    }

    /// <summary>Runs <paramref name="program"/> and asserts exit code 0; returns its output.</summary>
    public static async Task<string> RunToolAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, $"{Path.GetFileName(program)} {string.Join(' ', arguments)} exited with {process.ExitCode}: {output}");
        return output;
    }

    private static Guid SubmissionId(HttpResponseMessage response) =>
        Guid.Parse(response.Content.Headers.ContentLocation!.Segments[^1]);

    private static async Task WaitForAsync(Func<bool> condition, List<Task> load, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition() && DateTime.UtcNow < deadline && load.TrueForAll(t => !t.IsCompleted))
        {
            await Task.Delay(10);
        }

        var failed = load.FirstOrDefault(t => t.IsFaulted);
        if (failed is not null)
        {
            await failed;
        }

        Assert.True(condition(), $"Expected {what}.");
    }

    private static async Task<List<(string Fnr, string Version, DateTimeOffset LastUpdated)>> ReadFeedAsync(HttpClient client)
    {
        var feed = new List<(string, string, DateTimeOffset)>();
        string? page = "v1/Patient?_count=50&_sort=_lastUpdated";
        while (page is not null)
        {
            var bundle = await client.GetJsonAsync(page, HttpStatusCode.OK);
            feed.AddRange(bundle.Resources().Select(p => (
                (string)p["identifier"]![0]!["value"]!,
                (string)p["meta"]!["versionId"]!,
                DateTimeOffset.Parse((string)p["meta"]!["lastUpdated"]!, System.Globalization.CultureInfo.InvariantCulture))));
            page = bundle.Link("next");
        }

        return feed;
    }
}
