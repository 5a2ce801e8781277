using System.Net;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Processing;

public sealed class CrashTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("pit-crash-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task Submissions_accepted_before_a_kill_are_applied_once_after_restart()
    {
        var statusPaths = new List<string>();
        var people = Enumerable.Range(0, 40).Select(_ => TestPatients.NewFnr()).ToList();
        await using (var server = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, _data, new Dictionary<string, string?> { ["Pit:Processing:Enabled"] = "false" }))
        {
            using var client = server.CreateClient();
            foreach (var fnr in people)
            {
                statusPaths.Add((await client.SubmitAsync(TestPatients.Json(fnr))).PathAndQuery);
            }

            Assert.Equal(HttpStatusCode.Accepted, (await client.GetAsync(statusPaths[0])).StatusCode);
            await server.KillAsync();
        }

        await using var restarted = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, _data);
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
    public async Task Killing_the_server_under_load_loses_no_accepted_submission_and_applies_none_twice() =>
        await KillUnderLoad.RunAsync(_data);
}
