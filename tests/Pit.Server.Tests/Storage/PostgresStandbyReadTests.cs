using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// Reads from a streaming standby (<c>Pit:Storage:ReadConnectionString</c>): server instances over one primary whose
/// GETs go to a real hot standby of it. Stamps commit in order and the standby replays commits in WAL order, so it
/// shows a prefix of the feed: stale, never gappy.
/// </summary>
public sealed class PostgresStandbyReadTests(PostgresStandbyPair pair) : IClassFixture<PostgresStandbyPair>
{
    private static readonly string[] Organisations = [TestServer.DefaultOrganisation, TestServer.OtherOrganisation];

    [Fact]
    public async Task Readers_paging_and_long_polling_a_standby_miss_and_repeat_no_version_while_several_organisations_submit_to_two_instances()
    {
        using var signing = RSA.Create(2048);
        var (settings, _) = await StandbySettingsAsync(signing);
        settings["Pit:Processing:BatchSize"] = "7";
        settings["Pit:RateLimiting:Enabled"] = "false"; // the readers poll every 5 ms; throttling has tests of its own
        await using var a = await TestServer.StartAsync(settings);
        await using var b = await TestServer.StartAsync(settings);
        await pair.Standby.WaitForReplayOfAsync(pair.Primary); // the schema the instances migrated on the primary
        var clients = Organisations.ToDictionary(o => o, o => new[] { Client(a, o), Client(b, o) });
        try
        {
            var people = Organisations.ToDictionary(o => o, _ => Enumerable.Range(0, 10).Select(_ => TestPatients.NewFnr()).ToArray());
            using var done = new CancellationTokenSource();

            // Per organisation one reader paging and one long-polling, each spreading its requests over both instances.
            var readers = Organisations
                .SelectMany(o => new[] { new ChangeFeedConsumer(clients[o]), new ChangeFeedConsumer(clients[o]) { Prefer = "wait=1" } }.Select(c => (Organisation: o, Reader: c)))
                .ToList();
            var reading = readers.Select(r => r.Reader.RunAsync(done.Token)).ToList();

            var statusUrls = await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
            {
                var organisation = Organisations[worker % 2];
                var client = clients[organisation][worker / 2];
                var random = new Random(worker);
                var urls = new List<(HttpClient, Uri)>();
                for (var i = 0; i < 30; i++)
                {
                    urls.Add((client, await client.SubmitAsync(TestPatients.Json(people[organisation][random.Next(10)], family: $"F{worker}-{i}"))));
                }

                return urls;
            })));
            foreach (var (client, url) in statusUrls.SelectMany(u => u))
            {
                Assert.Equal(HttpStatusCode.OK, (await client.WaitProcessedAsync(url)).Status);
            }

            // Every accepted submission becomes visible on the standby; the readers then see three empty rounds and stop.
            await pair.Standby.WaitForReplayOfAsync(pair.Primary);
            await done.CancelAsync();
            await Task.WhenAll(reading);
            foreach (var (organisation, reader) in readers)
            {
                await reader.AssertCompleteAsync(clients[organisation][0], people[organisation].Length);
            }
        }
        finally
        {
            foreach (var client in clients.Values.SelectMany(c => c))
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_standby_whose_replay_is_paused_serves_the_feed_as_it_was_and_wakes_a_held_search_once_replay_resumes()
    {
        using var signing = RSA.Create(2048);
        var (settings, primaryOnly) = await StandbySettingsAsync(signing);
        settings["Pit:Storage:StandbyWaitTimeout"] = "00:10:00"; // waiters must be woken by the replay, not by this timeout
        await using var writer = await TestServer.StartAsync(settings);
        settings["Pit:Processing:Enabled"] = "false"; // only reads: its wake-ups come through LISTEN and the standby
        await using var reader = await TestServer.StartAsync(settings);
        primaryOnly["Pit:Processing:Enabled"] = "false";
        await using var onPrimary = await TestServer.StartAsync(primaryOnly);
        await reader.Services.GetRequiredService<PostgresFeedListener>().Listening.WaitAsync(TimeSpan.FromSeconds(30));
        var writers = Organisations.ToDictionary(o => o, o => Client(writer, o));
        var readers = Organisations.ToDictionary(o => o, o => Client(reader, o));
        var primaryReaders = Organisations.ToDictionary(o => o, o => Client(onPrimary, o));
        try
        {
            var people = Organisations.ToDictionary(o => o, _ => Enumerable.Range(0, 4).Select(_ => TestPatients.NewFnr()).ToArray());
            foreach (var organisation in Organisations)
            {
                foreach (var fnr in people[organisation][..^1])
                {
                    await writers[organisation].SubmitAndReadAsync(TestPatients.Json(fnr, family: "Before"));
                }
            }

            // A search held on the reading instance is woken by the last one, read from the standby. Notifications
            // arrive in commit order, so once it has, the reading instance has handled every earlier one too.
            await pair.Standby.WaitForReplayOfAsync(pair.Primary);
            var last = (await FeedAsync(readers[Organisations[1]]))[^1].LastUpdated;
            var first = readers[Organisations[1]].GetPreferringAsync(LongPolls.After(last), "wait=30");
            await reader.WaitersAsync(1);
            foreach (var organisation in Organisations)
            {
                await writers[organisation].SubmitAndReadAsync(TestPatients.Json(people[organisation][^1], family: "Before"));
            }

            var firstAnswer = await first.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(people[Organisations[1]][^1], (string?)Assert.Single(firstAnswer.Body.Resources())["identifier"]![0]!["value"]);

            await pair.Standby.WaitForReplayOfAsync(pair.Primary);
            var before = new Dictionary<string, List<FeedEntry>>();
            foreach (var organisation in Organisations)
            {
                before[organisation] = await FeedAsync(readers[organisation]);
                Assert.Equal(await FeedAsync(primaryReaders[organisation]), before[organisation]);
            }

            var hub = reader.Services.GetRequiredService<FeedChangeHub>();
            using var woken = hub.Subscribe(Organisations[0]);
            await pair.Standby.SetReplayPausedAsync(true);
            Task<LongPollAnswer> held;
            try
            {
                held = readers[Organisations[0]].GetPreferringAsync(LongPolls.After(before[Organisations[0]][^1].LastUpdated), "wait=30");
                await reader.WaitersAsync(1);

                // Updates of the earlier Patients and new ones, in both organisations at once, all applied on the primary.
                await Task.WhenAll(Organisations.Select(o => Task.Run(async () =>
                {
                    var urls = new List<Uri>();
                    foreach (var fnr in people[o].Take(2).Append(TestPatients.NewFnr()).Append(TestPatients.NewFnr()))
                    {
                        urls.Add(await writers[o].SubmitAsync(TestPatients.Json(fnr, family: "After")));
                    }

                    foreach (var url in urls)
                    {
                        Assert.Equal(HttpStatusCode.OK, (await writers[o].WaitProcessedAsync(url)).Status);
                    }
                })));

                // The reading instance has heard of the changes, and wakes nobody until the standby has replayed them.
                var gate = reader.Services.GetRequiredService<StandbyReplayGate>();
                await WaitUntilAsync(() => gate.Waiting > 0, "the reading instance to hear of the changes");
                Assert.False(woken.Changed.IsCompleted);

                // Stale, never wrong: the standby serves exactly the feed as it was when replay stopped.
                foreach (var organisation in Organisations)
                {
                    Assert.Equal(before[organisation], await FeedAsync(readers[organisation]));
                    Assert.Equal(before[organisation].Count + 2, (await FeedAsync(primaryReaders[organisation])).Count);
                }

                Assert.False(woken.Changed.IsCompleted);
            }
            finally
            {
                await pair.Standby.SetReplayPausedAsync(false);
            }

            // Replay resumed: the waiters are woken, and the held search answers the changes.
            await woken.Changed.WaitAsync(TimeSpan.FromSeconds(60));
            var answer = await held.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(HttpStatusCode.OK, answer.Status);
            Assert.NotEmpty(answer.Body.Resources());
            Assert.All(answer.Body.Resources(), p => Assert.Equal("After", (string?)p["name"]![0]!["family"]));

            await pair.Standby.WaitForReplayOfAsync(pair.Primary);
            foreach (var organisation in Organisations)
            {
                Assert.Equal(await FeedAsync(primaryReaders[organisation]), await FeedAsync(readers[organisation]));
            }
        }
        finally
        {
            foreach (var client in writers.Values.Concat(readers.Values).Concat(primaryReaders.Values))
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_patient_whose_status_says_processed_is_read_by_id_while_the_standby_lags()
    {
        using var signing = RSA.Create(2048);
        var (settings, _) = await StandbySettingsAsync(signing);
        await using var server = await TestServer.StartAsync(settings);
        await pair.Standby.WaitForReplayOfAsync(pair.Primary);
        using var client = Client(server, TestServer.DefaultOrganisation);
        using var other = Client(server, TestServer.OtherOrganisation);

        await pair.Standby.SetReplayPausedAsync(true);
        try
        {
            var fnr = TestPatients.NewFnr();
            var (status, body, location) = await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(fnr)));
            Assert.True(status == HttpStatusCode.OK, body.ToJsonString());

            var patient = await client.GetJsonAsync(location!.ToString(), HttpStatusCode.OK);
            Assert.Equal(fnr, (string?)patient["identifier"]![0]!["value"]);

            // The standby really lags: its feed does not have the Patient yet.
            var feed = await client.GetJsonAsync("v1/Patient?_count=50", HttpStatusCode.OK);
            Assert.DoesNotContain(feed.Resources(), p => (string?)p["id"] == (string?)patient["id"]);

            // Read from the primary or not, a Patient stays its organisation's own.
            await other.GetJsonAsync(location.ToString(), HttpStatusCode.NotFound);
        }
        finally
        {
            await pair.Standby.SetReplayPausedAsync(false);
        }
    }

    [Fact]
    public async Task Readiness_checks_the_read_standby_and_is_503_while_it_cannot_be_reached_as_reads_are()
    {
        using var signing = RSA.Create(2048);
        var primary = await pair.Primary.CreateDatabaseAsync();
        // A standby of its own, so that stopping it leaves the other tests' standby alone.
        await using var standby = await pair.Primary.StartStandbyAsync();
        var settings = new Dictionary<string, string?>(PostgresMultiInstanceTests.Settings(primary, signing))
        {
            ["Pit:Storage:ReadConnectionString"] = standby.ConnectionString(new NpgsqlConnectionStringBuilder(primary).Database!),
        };
        await using var server = await TestServer.StartAsync(settings);
        using var client = Client(server, TestServer.DefaultOrganisation);
        await standby.WaitForReplayOfAsync(pair.Primary);

        var ready = await ReadinessAsync(client, HttpStatusCode.OK);
        Assert.Equal("Healthy", (string?)ready["checks"]!["store-reads"]!["status"]);
        Assert.True((bool)ready["checks"]!["store-reads"]!["data"]!["inRecovery"]!);

        await standby.StopAsync(immediate: true);
        var notReady = await ReadinessAsync(client, HttpStatusCode.ServiceUnavailable);
        Assert.Equal(("Unhealthy", "Healthy"), ((string?)notReady["checks"]!["store-reads"]!["status"], (string?)notReady["checks"]!["store"]!["status"]));
        Assert.DoesNotContain(standby.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), notReady.ToJsonString(), StringComparison.Ordinal);
        // What readiness reports is what readers get; writes still go to the primary.
        using (var read = await client.GetAsync("v1/Patient"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, read.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/live")).StatusCode);

        await standby.StartAsync();
        await ReadinessAsync(client, HttpStatusCode.OK);
    }

    /// <summary>The readiness answer once it has the expected status (a restarted server takes a moment to accept connections).</summary>
    private static async Task<System.Text.Json.Nodes.JsonNode> ReadinessAsync(HttpClient client, HttpStatusCode expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            using var answer = await client.GetAsync("health/ready");
            if (answer.StatusCode == expected || DateTime.UtcNow > deadline)
            {
                Assert.Equal(expected, answer.StatusCode);
                return System.Text.Json.Nodes.JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
            }

            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Changes_waiting_for_the_standby_are_bounded_and_past_the_bound_merge_into_one_for_every_tenant()
    {
        var options = new PostgresStoreOptions { ReadConnectionString = pair.Standby.ConnectionString() };
        await using var primary = NpgsqlDataSource.Create(pair.Primary.ConnectionString());
        await using var reads = new PostgresReadSource(primary, options);
        var hub = new FeedChangeHub();
        var gate = new StandbyReplayGate(hub, reads, Options.Create(options), TimeProvider.System, NullLogger<StandbyReplayGate>.Instance);
        using var waiter = hub.Subscribe(TestServer.DefaultOrganisation);

        // Not started yet: nothing asks the standby, so every change waits.
        for (var i = 1; i <= StandbyReplayGate.MaxWaiting; i++)
        {
            gate.Wake(new NpgsqlLogSequenceNumber((ulong)i), [TestServer.OtherOrganisation]);
        }

        Assert.Equal(StandbyReplayGate.MaxWaiting, gate.Waiting);
        gate.Wake(new NpgsqlLogSequenceNumber(1), [TestServer.OtherOrganisation]);
        Assert.Equal(1, gate.Waiting);
        Assert.False(waiter.Changed.IsCompleted);

        // The merged change is for every tenant: once the standby has replayed it, every waiter is woken.
        await gate.StartAsync(CancellationToken.None);
        try
        {
            await waiter.Changed.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, gate.Waiting);
        }
        finally
        {
            await gate.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_promoted_standby_holds_no_waiter_for_a_position_it_will_never_replay()
    {
        await using var promoted = await pair.Primary.StartStandbyAsync();
        Assert.Equal("true", await promoted.ScalarTextAsync("SELECT pg_promote();"));
        var options = new PostgresStoreOptions { ReadConnectionString = promoted.ConnectionString(), StandbyWaitTimeout = TimeSpan.FromMinutes(10) };
        await using var primary = NpgsqlDataSource.Create(pair.Primary.ConnectionString());
        await using var reads = new PostgresReadSource(primary, options);
        var hub = new FeedChangeHub();
        var gate = new StandbyReplayGate(hub, reads, Options.Create(options), TimeProvider.System, NullLogger<StandbyReplayGate>.Instance);
        using var waiter = hub.Subscribe(TestServer.DefaultOrganisation);

        // A position the promoted server's replay never reaches (its last replayed record stays where promotion left it).
        gate.Wake(new NpgsqlLogSequenceNumber(ulong.MaxValue / 2), [TestServer.DefaultOrganisation]);
        Assert.Equal(1, gate.Waiting);
        await gate.StartAsync(CancellationToken.None);
        try
        {
            // Reads there see everything it has, as on any primary: the waiter is woken, not held to the 10-minute timeout.
            await waiter.Changed.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(0, gate.Waiting);
        }
        finally
        {
            await gate.StopAsync(CancellationToken.None);
        }
    }

    [Theory]
    [InlineData("@0/3000148,974762501,123456785", "0/3000148", "974762501,123456785")]
    [InlineData("@16/B374D848,*", "16/B374D848", null)]
    [InlineData("974762501,123456785", null, "974762501,123456785")]
    [InlineData("*", null, null)]
    public void A_feed_notification_carries_the_commit_LSN_and_the_earlier_tenants_only_form_is_still_understood(
        string payload, string? lsn, string? tenants)
    {
        var notification = FeedNotification.Parse(payload);
        Assert.Equal(lsn, notification.Lsn?.ToString());
        Assert.Equal(tenants, notification.Tenants is null ? null : string.Join(',', notification.Tenants));
    }

    private sealed record FeedEntry(string Id, string Version, string Family, string LastUpdated);

    /// <summary>One organisation's whole feed, oldest first.</summary>
    private static async Task<List<FeedEntry>> FeedAsync(HttpClient client)
    {
        var entries = new List<FeedEntry>();
        string? url = "v1/Patient?_count=50";
        while (url is not null)
        {
            var bundle = await client.GetJsonAsync(url, HttpStatusCode.OK);
            entries.AddRange(bundle.Resources().Select(p => new FeedEntry(
                (string)p["id"]!, (string)p["meta"]!["versionId"]!, (string)p["name"]![0]!["family"]!, (string)p["meta"]!["lastUpdated"]!)));
            url = bundle.Link("next");
        }

        return entries;
    }

    /// <summary>Settings for instances whose reads go to the standby, and the same without (reads on the primary).</summary>
    private async Task<(Dictionary<string, string?> OnStandby, Dictionary<string, string?> OnPrimary)> StandbySettingsAsync(RSA signing)
    {
        var (primary, standby) = await pair.CreateDatabaseAsync();
        var onPrimary = PostgresMultiInstanceTests.Settings(primary, signing);
        return (new Dictionary<string, string?>(onPrimary) { ["Pit:Storage:ReadConnectionString"] = standby }, onPrimary);
    }

    private static HttpClient Client(TestServer server, string organisation) =>
        server.CreateClient(organisation, baseAddress: PostgresMultiInstanceTests.PublicBase, connectTo: server.BaseAddress);

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(20);
        }
    }
}
