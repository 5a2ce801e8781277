using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pit.Server.Auth;
using Pit.Server.Storage.Postgres;
using Pit.Server.Tests.Auth;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>The DPoP replay cache every instance over one PostgreSQL database shares.</summary>
public sealed class PostgresDpopReplayCacheTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private static CancellationToken None => CancellationToken.None;

    [Fact]
    public async Task A_proof_recorded_by_one_instance_is_refused_by_every_instance()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        var time = new ManualTimeProvider(Start);
        await using var sourceA = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var sourceB = PostgresPitStore.CreateDataSource(db.ConnectionString);
        var a = Cache(sourceA, time);
        var b = Cache(sourceB, time);
        var expires = Start.AddMinutes(5);

        Assert.True(await a.TryAddAsync("proof-1", expires, None));
        Assert.False(await b.TryAddAsync("proof-1", expires, None));
        Assert.False(await a.TryAddAsync("proof-1", expires, None));
        Assert.True(await b.TryAddAsync("proof-2", expires, None));
        Assert.False(await a.TryAddAsync("proof-2", expires, None));
    }

    [Fact]
    public async Task Of_many_instances_racing_for_one_proof_exactly_one_wins()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        var sources = Enumerable.Range(0, 3).Select(_ => PostgresPitStore.CreateDataSource(db.ConnectionString)).ToList();
        try
        {
            var caches = sources.Select(s => Cache(s, TimeProvider.System)).ToList();
            var expires = DateTimeOffset.UtcNow.AddMinutes(5);
            for (var round = 0; round < 5; round++)
            {
                var key = $"proof-{round}";
                var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(n => Task.Run(async () => await caches[n % caches.Count].TryAddAsync(key, expires, None))));
                Assert.Single(results, r => r);
            }
        }
        finally
        {
            foreach (var source in sources)
            {
                await source.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task An_expired_entry_no_longer_counts_and_is_swept()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        var time = new ManualTimeProvider(Start);
        await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
        var cache = Cache(source, time);
        Assert.True(await cache.TryAddAsync("short", Start.AddMinutes(1), None));
        Assert.True(await cache.TryAddAsync("long", Start.AddMinutes(10), None));

        time.Advance(TimeSpan.FromMinutes(2));
        Assert.True(await cache.TryAddAsync("short", time.GetUtcNow().AddMinutes(1), None));
        Assert.False(await cache.TryAddAsync("short", time.GetUtcNow().AddMinutes(1), None));
        Assert.False(await cache.TryAddAsync("long", time.GetUtcNow().AddMinutes(1), None));

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(1, await cache.RemoveExpiredAsync(100, None));
        Assert.Equal(0, await cache.RemoveExpiredAsync(100, None));
        await using var count = source.CreateCommand("SELECT array_agg(key) FROM dpop_replay;");
        Assert.Equal(["long"], (string[])(await count.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task The_cache_fails_closed_while_the_database_is_down_and_works_again_after()
    {
        // A cluster of its own: this test stops it.
        await using var own = new PostgresServer();
        await own.InitializeAsync();
        try
        {
            await using var db = await PostgresTestDatabase.CreateAsync(own);
            await db.OpenStoreAsync();
            await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
            var cache = Cache(source, TimeProvider.System);
            var expires = DateTimeOffset.UtcNow.AddMinutes(5);
            Assert.True(await cache.TryAddAsync("before", expires, None));

            await own.StopAsync();
            await Assert.ThrowsAsync<ReplayCacheUnavailableException>(async () => await cache.TryAddAsync("during", expires, None));
            await own.StartAsync();

            Assert.True(await cache.TryAddAsync("after", expires, None));
            Assert.False(await cache.TryAddAsync("before", expires, None));
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_Postgres_provider_brings_the_shared_cache_and_the_server_refuses_a_replayed_proof()
    {
        await using var app = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await server.CreateDatabaseAsync(),
        });
        Assert.IsType<PostgresDpopReplayCache>(app.Services.GetRequiredService<IDpopReplayCache>());

        using var requests = new AuthRequests(app);
        var token = requests.ValidToken();
        var proof = requests.Proof(token);
        using var first = await requests.SendAsync(token, proof);
        AuthAssert.PassedAuthentication(first);
        using var second = await requests.SendAsync(token, proof);
        await AuthAssert.UnauthorizedAsync(second, "invalid_dpop_proof", "already been used");
    }

    private static PostgresDpopReplayCache Cache(NpgsqlDataSource source, TimeProvider time) =>
        new(source, time, NullLogger<PostgresDpopReplayCache>.Instance);
}
