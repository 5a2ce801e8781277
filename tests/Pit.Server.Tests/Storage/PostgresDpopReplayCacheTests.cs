using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
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
        var time = new FakeTimeProvider(Start);
        await using var sourceA = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var sourceB = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var a = Cache(sourceA, time);
        await using var b = Cache(sourceB, time);

        Assert.True(await a.TryAddAsync(Entry(1), None));
        Assert.False(await b.TryAddAsync(Entry(1), None));
        Assert.False(await a.TryAddAsync(Entry(1), None));
        Assert.True(await b.TryAddAsync(Entry(2), None));
        Assert.False(await a.TryAddAsync(Entry(2), None));
    }

    [Fact]
    public async Task Of_many_instances_racing_for_one_proof_exactly_one_wins()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        var sources = Enumerable.Range(0, 3).Select(_ => PostgresPitStore.CreateDataSource(db.ConnectionString)).ToList();
        var caches = sources.Select(s => Cache(s, new FakeTimeProvider(Start))).ToList();
        try
        {
            for (var round = 0; round < 5; round++)
            {
                var entry = Entry((ulong)round);
                var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(n => Task.Run(async () => await caches[n % caches.Count].TryAddAsync(entry, None))));
                Assert.Single(results, r => r);
            }
        }
        finally
        {
            foreach (var cache in caches)
            {
                await cache.DisposeAsync();
            }

            foreach (var source in sources)
            {
                await source.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Concurrent_requests_are_inserted_in_batches_and_each_learns_whether_its_own_proof_was_new()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var cache = Cache(source, new FakeTimeProvider(Start));

        // 1 500 proofs, every third one sent twice at the same moment: exactly one of each pair may win.
        var requests = Enumerable.Range(0, 1_500).SelectMany(i => i % 3 == 0 ? new[] { i, i } : [i]).ToList();
        var results = await Task.WhenAll(requests.Select(i => Task.Run(async () => (Key: i, New: await cache.TryAddAsync(Entry((ulong)i), None)))));

        foreach (var group in results.GroupBy(r => r.Key))
        {
            Assert.Single(group, r => r.New);
        }

        await using var count = source.CreateCommand("SELECT count(*) FROM dpop_replay_keys;");
        Assert.Equal(1_500L, (long)(await count.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task A_request_that_finds_the_writers_queue_full_waits_for_room_and_records_nothing_if_it_gives_up()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var cache = Cache(source, new FakeTimeProvider(Start));

        // The writer's connection is open and its types loaded; then hold the table (writes only), so the writer's next
        // insert, with one proof in its batch, waits for the lock.
        Assert.True(await cache.TryAddAsync(Entry(999_999), None));
        await using var admin = new NpgsqlConnection(db.ConnectionString);
        await admin.OpenAsync();
        await using var tx = await admin.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand("LOCK TABLE dpop_replay_keys IN EXCLUSIVE MODE;", admin, tx))
        {
            await hold.ExecuteNonQueryAsync();
        }

        var first = cache.TryAddAsync(Entry(0), None).AsTask();
        await using (var blocked = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO dpop_replay_keys%' AND pid <> pg_backend_pid();", admin))
        {
            var waiting = 0L;
            for (var i = 0; i < 500 && (waiting = (long)(await blocked.ExecuteScalarAsync())!) == 0; i++)
            {
                await Task.Delay(20);
            }

            Assert.Equal(1L, waiting);
        }

        // Exactly QueueCapacity more proofs wait for the writer; the next ones wait for room.
        var queued = Enumerable.Range(1, PostgresDpopReplayCache.QueueCapacity).Select(i => cache.TryAddAsync(Entry((ulong)i), None).AsTask()).ToList();
        using var givesUp = new CancellationTokenSource();
        var overflowGivingUp = cache.TryAddAsync(Entry(100_000), givesUp.Token).AsTask();
        var overflowWaiting = cache.TryAddAsync(Entry(100_001), None).AsTask();
        await givesUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => overflowGivingUp);
        Assert.False(overflowWaiting.IsCompleted);
        Assert.False(first.IsCompleted);

        await tx.RollbackAsync();
        Assert.True(await first);
        Assert.All(await Task.WhenAll(queued), Assert.True);
        Assert.True(await overflowWaiting);

        // The proof that gave up while it waited for room was never recorded, so it is still new.
        Assert.True(await cache.TryAddAsync(Entry(100_000), None));
    }

    [Fact]
    public async Task The_replay_table_is_unlogged_and_keys_are_16_bytes()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var command = source.CreateCommand("""
            SELECT c.relpersistence::text, format_type(a.atttypid, a.atttypmod)
            FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'key'
            WHERE c.relname = 'dpop_replay_keys';
            """);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal("u", reader.GetString(0));
        Assert.Equal("uuid", reader.GetString(1));
    }

    [Fact]
    public async Task An_expired_entry_no_longer_counts_and_expired_entries_are_deleted_in_batches()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        var time = new FakeTimeProvider(Start);
        await using var source = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var cache = Cache(source, time);
        for (var i = 0u; i < 5; i++)
        {
            Assert.True(await cache.TryAddAsync(Entry(i, expiresIn: 60), None));
        }

        Assert.True(await cache.TryAddAsync(Entry(100, expiresIn: 600), None));

        time.Advance(TimeSpan.FromMinutes(2));
        Assert.True(await cache.TryAddAsync(Entry(0, expiresIn: 120 + 60), None));
        Assert.False(await cache.TryAddAsync(Entry(0, expiresIn: 120 + 60), None));
        Assert.False(await cache.TryAddAsync(Entry(100, expiresIn: 120 + 60), None));

        Assert.Equal(2, await cache.RemoveExpiredAsync(2, None));
        Assert.Equal(2, await cache.RemoveExpiredAsync(2, None));
        Assert.Equal(0, await cache.RemoveExpiredAsync(2, None));
        await using var count = source.CreateCommand("SELECT count(*) FROM dpop_replay_keys;");
        Assert.Equal(2L, (long)(await count.ExecuteScalarAsync())!);
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
            await using var cache = Cache(source, new FakeTimeProvider(Start));
            Assert.True(await cache.TryAddAsync(Entry(1), None));

            await own.StopAsync();
            await Assert.ThrowsAsync<ReplayCacheUnavailableException>(async () => await cache.TryAddAsync(Entry(2), None));
            await own.StartAsync();

            Assert.True(await cache.TryAddAsync(Entry(3), None));
            Assert.False(await cache.TryAddAsync(Entry(1), None));
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

    private static DpopReplayEntry Entry(ulong key, long expiresIn = 300) =>
        new(new UInt128(0xDB0B, key), Start.ToUnixTimeSeconds(), Start.ToUnixTimeSeconds() + expiresIn);
}
