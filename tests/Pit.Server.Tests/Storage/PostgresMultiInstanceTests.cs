using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;
using Pit.Server.Tests.Auth;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// Two server instances over one PostgreSQL database, both behind one public name (<c>Pit:PublicBaseUrl</c>) and
/// trusting one token issuer, as behind a load balancer.
/// </summary>
public sealed class PostgresMultiInstanceTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    internal static readonly Uri PublicBase = new("http://pit.test/");

    [Fact]
    public async Task Submissions_to_either_instance_are_read_from_either_and_a_cursor_from_one_works_on_the_other()
    {
        using var signing = RSA.Create(2048);
        var settings = Settings(await server.CreateDatabaseAsync(), signing);
        await using var a = await TestServer.StartAsync(settings);
        await using var b = await TestServer.StartAsync(settings);
        using var clientA = a.CreateClient(baseAddress: PublicBase, connectTo: a.BaseAddress);
        using var clientB = b.CreateClient(baseAddress: PublicBase, connectTo: b.BaseAddress);

        var people = Enumerable.Range(0, 12).Select(_ => TestPatients.NewFnr()).ToArray();
        var accepted = new List<(HttpClient Other, Uri Status)>();
        for (var i = 0; i < people.Length; i++)
        {
            var (to, other) = i % 2 == 0 ? (clientA, clientB) : (clientB, clientA);
            accepted.Add((other, await to.SubmitAsync(TestPatients.Json(people[i], family: "First"))));
        }

        // A second version of half of them, each through the instance that did not take the first.
        for (var i = 0; i < 6; i++)
        {
            var (to, other) = i % 2 == 0 ? (clientB, clientA) : (clientA, clientB);
            accepted.Add((other, await to.SubmitAsync(TestPatients.Json(people[i], family: "Second"))));
        }

        foreach (var (other, status) in accepted)
        {
            Assert.Equal(HttpStatusCode.OK, (await other.WaitProcessedAsync(status)).Status);
        }

        // Page through the feed alternating instances: every cursor minted by one is followed on the other.
        var seen = new List<(string Fnr, string Id, string Version, string Family, string LastUpdated)>();
        string? url = "v1/Patient?_count=5";
        for (var page = 0; url is not null; page++)
        {
            var bundle = await (page % 2 == 0 ? clientA : clientB).GetJsonAsync(url, HttpStatusCode.OK);
            foreach (var p in bundle.Resources())
            {
                seen.Add(((string)p["identifier"]![0]!["value"]!, (string)p["id"]!, (string)p["meta"]!["versionId"]!,
                    (string)p["name"]![0]!["family"]!, (string)p["meta"]!["lastUpdated"]!));
            }

            url = bundle.Link("next");
        }

        Assert.Equal(people.Order(StringComparer.Ordinal), seen.Select(s => s.Fnr).Order(StringComparer.Ordinal));
        Assert.Equal(people.Length, seen.Select(s => s.Id).Distinct().Count());
        Assert.All(seen, s => Assert.Equal(Array.IndexOf(people, s.Fnr) < 6 ? ("2", "Second") : ("1", "First"), (s.Version, s.Family)));
        Assert.All(seen.Zip(seen.Skip(1)), pair => Assert.True(string.CompareOrdinal(pair.First.LastUpdated, pair.Second.LastUpdated) < 0));
    }

    [Fact]
    public async Task A_consumer_polling_both_instances_misses_and_repeats_no_version_while_both_take_submissions()
    {
        using var signing = RSA.Create(2048);
        var settings = Settings(await server.CreateDatabaseAsync(), signing);
        settings["Pit:Processing:BatchSize"] = "7";
        settings["Pit:RateLimiting:Enabled"] = "false"; // the consumer polls every 5 ms; throttling has tests of its own
        await using var a = await TestServer.StartAsync(settings);
        await using var b = await TestServer.StartAsync(settings);
        HttpClient[] clients = [a.CreateClient(baseAddress: PublicBase, connectTo: a.BaseAddress), b.CreateClient(baseAddress: PublicBase, connectTo: b.BaseAddress)];
        try
        {
            var people = Enumerable.Range(0, 20).Select(_ => TestPatients.NewFnr()).ToArray();
            var statusUrls = new ConcurrentBag<(HttpClient Client, Uri Url)>();
            using var done = new CancellationTokenSource();
            var submitters = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
            {
                var random = new Random(worker);
                var client = clients[worker % 2];
                for (var i = 0; i < 40; i++)
                {
                    statusUrls.Add((client, await client.SubmitAsync(TestPatients.Json(people[random.Next(people.Length)], family: $"F{worker}-{i}"))));
                }
            })).ToList();

            // A full pass oldest-first, then polling with gt<last lastUpdated seen>, each request to the other instance.
            var consumer = new ChangeFeedConsumer(clients);
            var consuming = consumer.RunAsync(done.Token);

            await Task.WhenAll(submitters);
            foreach (var (client, url) in statusUrls)
            {
                await client.WaitProcessedAsync(url);
            }

            await done.CancelAsync();
            await consuming;
            await consumer.AssertCompleteAsync(clients[0], people.Length);
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_search_waiting_on_one_instance_hears_of_a_submission_applied_by_the_other_and_again_after_its_listener_reconnects()
    {
        using var signing = RSA.Create(2048);
        var connectionString = await server.CreateDatabaseAsync();
        var settings = Settings(connectionString, signing);
        await using var b = await TestServer.StartAsync(settings);
        settings["Pit:Processing:Enabled"] = "false"; // a only waits: every wake-up it gets comes from b through the database
        await using var a = await TestServer.StartAsync(settings);
        using var clientA = a.CreateClient(baseAddress: PublicBase, connectTo: a.BaseAddress);
        using var clientB = b.CreateClient(baseAddress: PublicBase, connectTo: b.BaseAddress);
        await a.Services.GetRequiredService<Pit.Server.Storage.Postgres.PostgresFeedListener>().Listening.WaitAsync(TimeSpan.FromSeconds(10));
        var first = await clientB.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        var since = (string)first["meta"]!["lastUpdated"]!;
        var polling = clientA.GetPreferringAsync(LongPolls.After(since), "wait=20");
        await a.WaitersAsync(1);
        await clientB.WaitProcessedAsync(await clientB.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: "FromB")));
        var answer = await polling.WaitAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("FromB", (string?)Assert.Single(answer.Body.Resources())["name"]![0]!["family"]);

        // Drop every listening connection; each instance reconnects and listens again.
        await using (var admin = Npgsql.NpgsqlDataSource.Create(connectionString))
        {
            await using var kill = admin.CreateCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid();");
            Assert.True((long)(await kill.ExecuteScalarAsync())! >= 2);
            await using var listening = admin.CreateCommand("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND state = 'idle' AND pid <> pg_backend_pid();");
            for (var i = 0; i < 200 && (long)(await listening.ExecuteScalarAsync())! < 2; i++)
            {
                await Task.Delay(50);
            }
        }

        since = (string)answer.Body.Resources()[0]["meta"]!["lastUpdated"]!;
        polling = clientA.GetPreferringAsync(LongPolls.After(since), "wait=20");
        await a.WaitersAsync(1);
        await clientB.WaitProcessedAsync(await clientB.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: "AfterReconnect")));
        answer = await polling.WaitAsync(TimeSpan.FromSeconds(1));
        Assert.Equal("AfterReconnect", (string?)Assert.Single(answer.Body.Resources())["name"]![0]!["family"]);
    }

    [Fact]
    public async Task A_long_polling_consumer_of_both_instances_misses_and_repeats_no_version_while_both_take_submissions()
    {
        using var signing = RSA.Create(2048);
        var settings = Settings(await server.CreateDatabaseAsync(), signing);
        settings["Pit:Processing:BatchSize"] = "7";
        await using var a = await TestServer.StartAsync(settings);
        await using var b = await TestServer.StartAsync(settings);
        using var clientA = a.CreateClient(baseAddress: PublicBase, connectTo: a.BaseAddress);
        using var clientB = b.CreateClient(baseAddress: PublicBase, connectTo: b.BaseAddress);
        var people = Enumerable.Range(0, 15).Select(_ => TestPatients.NewFnr()).ToArray();
        using var done = new CancellationTokenSource();
        var consumer = new ChangeFeedConsumer(clientA, clientB) { Prefer = "wait=1" };
        var consuming = consumer.RunAsync(done.Token);

        var statusUrls = await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            var client = worker % 2 == 0 ? clientA : clientB;
            var urls = new List<(HttpClient, Uri)>();
            for (var i = 0; i < 30; i++)
            {
                urls.Add((client, await client.SubmitAsync(TestPatients.Json(people[random.Next(people.Length)], family: $"F{worker}-{i}"))));
            }

            return urls;
        })));
        foreach (var (client, url) in statusUrls.SelectMany(u => u))
        {
            await client.WaitProcessedAsync(url);
        }

        await done.CancelAsync();
        await consuming;
        await consumer.AssertCompleteAsync(clientA, people.Length);
    }

    [Fact]
    public async Task A_proof_used_on_one_instance_is_refused_as_a_replay_on_the_other()
    {
        using var signing = RSA.Create(2048);
        var settings = Settings(await server.CreateDatabaseAsync(), signing);
        await using var a = await TestServer.StartAsync(settings);
        await using var b = await TestServer.StartAsync(settings);
        using var key = DpopKey.CreateEcP256();
        var token = a.TokenMinter.Mint(new AccessTokenSpec { Jkt = key.Thumbprint });
        var proof = key.CreateProof(HttpMethod.Get, new Uri(PublicBase, "v1/Patient"), token);

        using var http = new HttpClient();
        using var first = await http.SendAsync(Request(a, token, proof));
        AuthAssert.PassedAuthentication(first);
        using var replay = await http.SendAsync(Request(b, token, proof));
        await AuthAssert.UnauthorizedAsync(replay, "invalid_dpop_proof", "already been used");

        // The same token with a fresh proof is fine on the other instance: it is the proof that was refused.
        using var fresh = await http.SendAsync(Request(b, token, key.CreateProof(HttpMethod.Get, new Uri(PublicBase, "v1/Patient"), token)));
        AuthAssert.PassedAuthentication(fresh);
    }

    private static HttpRequestMessage Request(TestServer target, string token, string proof)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(target.BaseAddress, "v1/Patient"));
        request.Headers.TryAddWithoutValidation("Authorization", "DPoP " + token);
        request.Headers.TryAddWithoutValidation("DPoP", proof);
        return request;
    }

    /// <summary>One database, one public name, one stand-in issuer and signing key for both instances.</summary>
    internal static Dictionary<string, string?> Settings(string connectionString, RSA signing)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = connectionString,
            ["Pit:PublicBaseUrl"] = PublicBase.ToString(),
            ["Pit:Auth:StandIn:Issuer"] = new Uri(PublicBase, "helseid-standin").ToString(),
            ["Pit:Auth:StandIn:SigningKey:kty"] = "RSA",
        };
        var p = signing.ExportParameters(includePrivateParameters: true);
        foreach (var (name, value) in new[] { ("n", p.Modulus), ("e", p.Exponent), ("d", p.D), ("p", p.P), ("q", p.Q), ("dp", p.DP), ("dq", p.DQ), ("qi", p.InverseQ) })
        {
            settings[$"Pit:Auth:StandIn:SigningKey:{name}"] = Base64UrlEncoder.Encode(value);
        }

        return settings;
    }
}
