using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class ChangeFeedTests
{
    [Fact]
    public async Task A_polling_consumer_never_misses_or_repeats_a_version_while_submitters_run_concurrently()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Processing:BatchSize"] = "7" });
        using var client = server.CreateClient();
        var people = Enumerable.Range(0, 30).Select(_ => TestPatients.NewFnr()).ToArray();
        var statusUrls = new ConcurrentBag<Uri>();
        using var done = new CancellationTokenSource();

        var submitters = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            for (var i = 0; i < 60; i++)
            {
                var who = people[random.Next(people.Length)];
                statusUrls.Add(await client.SubmitAsync(TestPatients.Json(who, family: $"F{worker}-{i}")));
            }
        })).ToList();

        var seen = new List<(string Id, int Version)>();
        var consumer = Task.Run(async () =>
        {
            // First a full pass oldest-first, then polling with gt<last lastUpdated seen>, exactly as the issue describes.
            string? last = null;
            var idleRoundsAfterDone = 0;
            while (idleRoundsAfterDone < 3)
            {
                var url = last is null ? "v1/Patient?_count=7" : $"v1/Patient?_count=7&_lastUpdated=gt{Uri.EscapeDataString(last)}";
                var got = 0;
                while (url is not null)
                {
                    var bundle = await client.GetJsonAsync(url, HttpStatusCode.OK);
                    foreach (var patient in bundle.Resources())
                    {
                        seen.Add(((string)patient["id"]!, int.Parse((string)patient["meta"]!["versionId"]!, System.Globalization.CultureInfo.InvariantCulture)));
                        last = (string)patient["meta"]!["lastUpdated"]!;
                        got++;
                    }

                    url = bundle.Link("next");
                }

                idleRoundsAfterDone = done.IsCancellationRequested && got == 0 ? idleRoundsAfterDone + 1 : 0;
                await Task.Delay(5);
            }
        });

        await Task.WhenAll(submitters);
        foreach (var url in statusUrls)
        {
            await client.WaitProcessedAsync(url);
        }

        await done.CancelAsync();
        await consumer;

        Assert.Equal(seen.Count, seen.Distinct().Count());
        foreach (var group in seen.GroupBy(s => s.Id))
        {
            var versions = group.Select(g => g.Version).ToList();
            Assert.Equal(versions.Order(), versions);
        }

        // Every patient's current version is the last one the consumer saw of it.
        var current = new Dictionary<string, int>();
        string? page = "v1/Patient?_count=50";
        while (page is not null)
        {
            var bundle = await client.GetJsonAsync(page, HttpStatusCode.OK);
            foreach (var p in bundle.Resources())
            {
                current[(string)p["id"]!] = int.Parse((string)p["meta"]!["versionId"]!, System.Globalization.CultureInfo.InvariantCulture);
            }

            page = bundle.Link("next");
        }

        Assert.Equal(people.Length, current.Count);
        var lastSeen = seen.GroupBy(s => s.Id).ToDictionary(g => g.Key, g => g.Last().Version);
        Assert.Equal(current.OrderBy(c => c.Key), lastSeen.OrderBy(c => c.Key));
        Assert.True(current.Values.Sum() > people.Length, "The run should have produced updates, not only creations.");
    }
}
