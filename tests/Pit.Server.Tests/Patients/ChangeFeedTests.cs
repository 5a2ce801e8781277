using System.Collections.Concurrent;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class ChangeFeedTests
{
    [Fact]
    public Task A_polling_consumer_never_misses_or_repeats_a_version_while_submitters_run_concurrently() => RunAsync(prefer: null);

    [Fact]
    public Task A_long_polling_consumer_never_misses_or_repeats_a_version_while_submitters_run_concurrently() => RunAsync(prefer: "wait=1");

    private static async Task RunAsync(string? prefer)
    {
        // One client polls every 5 ms while four submit and wait on status URLs: on a fast machine that is more than the
        // per-client limit (200/s), and a 429 is not what this test is about (the limit has tests of its own).
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Processing:BatchSize"] = "7",
            ["Pit:RateLimiting:Enabled"] = "false",
        });
        using var client = server.CreateClient();
        var people = Enumerable.Range(0, 30).Select(_ => TestPatients.NewFnr()).ToArray();
        var statusUrls = new ConcurrentBag<Uri>();
        using var done = new CancellationTokenSource();
        var consumer = new ChangeFeedConsumer(client) { Prefer = prefer };
        var consuming = consumer.RunAsync(done.Token);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            for (var i = 0; i < 60; i++)
            {
                statusUrls.Add(await client.SubmitAsync(TestPatients.Json(people[random.Next(people.Length)], family: $"F{worker}-{i}")));
            }
        })));
        foreach (var url in statusUrls)
        {
            await client.WaitProcessedAsync(url);
        }

        await done.CancelAsync();
        await consuming;
        await consumer.AssertCompleteAsync(client, people.Length);
    }
}
