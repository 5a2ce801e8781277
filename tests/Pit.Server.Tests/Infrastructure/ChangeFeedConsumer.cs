using System.Globalization;
using System.Net;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// A change-feed consumer exactly as the issue describes it: one full pass oldest first, then polling with
/// <c>_lastUpdated=gt&lt;last lastUpdated seen&gt;</c>, following next links, spreading its requests over the given clients
/// (one per server instance). With <see cref="Prefer"/> (e.g. <c>wait=1</c>) it long-polls instead. <see cref="AssertCompleteAsync"/>
/// checks it missed and repeated nothing.
/// </summary>
internal sealed class ChangeFeedConsumer(params HttpClient[] clients)
{
    private readonly List<(string Id, int Version)> _seen = [];

    /// <summary>A <c>Prefer</c> header sent with every request, e.g. <c>wait=1</c> for long polling.</summary>
    public string? Prefer { get; init; }

    /// <summary>Polls until <paramref name="finished"/> is set and three polls in a row bring nothing new.</summary>
    public async Task RunAsync(CancellationToken finished)
    {
        string? last = null;
        var idleRounds = 0;
        var turn = 0;
        while (idleRounds < 3)
        {
            var url = last is null ? "v1/Patient?_count=7" : $"v1/Patient?_count=7&_lastUpdated=gt{Uri.EscapeDataString(last)}";
            var got = 0;
            while (url is not null)
            {
                var client = clients[turn++ % clients.Length];
                var bundle = Prefer is null ? await client.GetJsonAsync(url, HttpStatusCode.OK) : await GetPreferringAsync(client, url);
                foreach (var patient in bundle.Resources())
                {
                    _seen.Add(((string)patient["id"]!, Version(patient["meta"]!["versionId"])));
                    last = (string)patient["meta"]!["lastUpdated"]!;
                    got++;
                }

                url = bundle.Link("next");
            }

            idleRounds = finished.IsCancellationRequested && got == 0 ? idleRounds + 1 : 0;
            await Task.Delay(5, CancellationToken.None);
        }
    }

    private async Task<System.Text.Json.Nodes.JsonNode> GetPreferringAsync(HttpClient client, string url)
    {
        var answer = await client.GetPreferringAsync(url, Prefer!);
        Assert.True(answer.Status == HttpStatusCode.OK, $"Expected 200 from {url}, got {(int)answer.Status}: {answer.Body.ToJsonString()}");
        return answer.Body;
    }

    /// <summary>No version seen twice, versions of each patient in order, and every patient's current version seen last.</summary>
    public async Task AssertCompleteAsync(HttpClient client, int expectedPatients)
    {
        Assert.Equal(_seen.Count, _seen.Distinct().Count());
        foreach (var group in _seen.GroupBy(s => s.Id))
        {
            var versions = group.Select(g => g.Version).ToList();
            Assert.Equal(versions.Order(), versions);
        }

        var current = new Dictionary<string, int>();
        string? page = "v1/Patient?_count=50";
        while (page is not null)
        {
            var bundle = await client.GetJsonAsync(page, HttpStatusCode.OK);
            foreach (var p in bundle.Resources())
            {
                current[(string)p["id"]!] = Version(p["meta"]!["versionId"]);
            }

            page = bundle.Link("next");
        }

        Assert.Equal(expectedPatients, current.Count);
        var lastSeen = _seen.GroupBy(s => s.Id).ToDictionary(g => g.Key, g => g.Last().Version);
        Assert.Equal(current.OrderBy(c => c.Key), lastSeen.OrderBy(c => c.Key));
        Assert.True(current.Values.Sum() > expectedPatients, "The run should have produced updates, not only creations.");
    }

    private static int Version(System.Text.Json.Nodes.JsonNode? value) => int.Parse((string)value!, CultureInfo.InvariantCulture);
}
