using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.Server.Tests.Storage;

/// <summary>What only the PostgreSQL engine has: migrations, query plans, retries, several instances.</summary>
public sealed class PostgresPitStoreTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private static CancellationToken None => CancellationToken.None;

    [Fact]
    public async Task A_pooled_connection_keeps_no_lock_or_listen_of_the_migration_or_the_feed_listener()
    {
        // The pool does not reset connections (it cost PostgreSQL more CPU per GET than the search), so whatever holds
        // session state must clean up itself. One connection in the pool: each step below gets the same one back.
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await using var dataSource = PostgresPitStore.CreateDataSource(db.ConnectionString + ";Maximum Pool Size=1");
        Assert.Contains("No Reset On Close=True", dataSource.ConnectionString, StringComparison.OrdinalIgnoreCase);
        await PostgresSchema.MigrateAsync(dataSource, NullLogger.Instance, None);

        var options = new PostgresStoreOptions();
        var gate = new StandbyReplayGate(new FeedChangeHub(), new PostgresReadSource(dataSource, options), Microsoft.Extensions.Options.Options.Create(options),
            TimeProvider.System, NullLogger<StandbyReplayGate>.Instance);
        var listener = new PostgresFeedListener(dataSource, gate, TimeProvider.System, NullLogger<PostgresFeedListener>.Instance);
        await listener.StartAsync(None);
        await listener.Listening.WaitAsync(TimeSpan.FromSeconds(10));
        await listener.StopAsync(None);

        await using var connection = await dataSource.OpenConnectionAsync();
        await using var check = new NpgsqlCommand("""
            SELECT (SELECT count(*) FROM pg_listening_channels()),
                   (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid());
            """, connection);
        await using var reader = await check.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(0L, reader.GetInt64(0));
        Assert.Equal(0L, reader.GetInt64(1));
    }

    [Fact]
    public async Task Instances_starting_at_once_apply_each_migration_once()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var stores = Enumerable.Range(0, 4)
            .Select(_ => new PostgresPitStore(PostgresPitStore.CreateDataSource(db.ConnectionString), TimeProvider.System, ownsDataSource: true))
            .ToList();
        try
        {
            await Task.WhenAll(stores.Select(s => Task.Run(() => s.MigrateAsync(None))));
            await stores[0].MigrateAsync(None);
        }
        finally
        {
            foreach (var s in stores)
            {
                await s.DisposeAsync();
            }
        }

        await using var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT array_agg(version ORDER BY version) FROM schema_migrations;", connection);
        Assert.Equal(Enumerable.Range(1, PostgresSchema.LatestVersion), (int[])(await command.ExecuteScalarAsync())!);
    }

    [Theory]
    [InlineData(null, false, false)]
    [InlineData(null, true, true)]
    [InlineData("t3", false, true)]
    [InlineData("t3", true, false)]
    public async Task Feed_pages_are_index_range_scans_without_a_sort(string? tenant, bool descending, bool bounded)
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        await using var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using (var seed = new NpgsqlCommand("""
            INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
            SELECT md5(n::text), 't' || (n % 500), 1, 1000000 + n, '\x00', n, '{}' FROM generate_series(1, 50000) n;
            ANALYZE patients;
            """, connection))
        {
            await seed.ExecuteNonQueryAsync();
        }

        var query = new PatientPageQuery(
            tenant, descending, bounded ? 1_010_000 : null, bounded ? 1_040_000 : null, new PagePosition(1_025_000, md5("25000")), 20);
        await using var explain = new NpgsqlCommand { Connection = connection };
        PostgresPitStore.BuildSearch(explain, query);
        explain.CommandText = "EXPLAIN " + explain.CommandText;
        var text = string.Join('\n', await PostgresRows.FirstColumnAsync(explain));
        Assert.Contains("Index Scan", text);
        Assert.Contains(tenant is null ? "patients_feed" : "patients_tenant_feed", text);
        Assert.DoesNotContain("Sort", text);
        Assert.DoesNotContain("Seq Scan", text);
        Assert.DoesNotContain("Filter", text); // every condition bounds the index range
        if (descending)
        {
            Assert.Contains("Backward", text);
        }

        static string md5(string s) => Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(s)));
    }

    [Fact]
    public async Task The_sequencers_clock_reads_one_entry_of_the_feed_index_that_holds_stamped_versions_only()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await db.OpenStoreAsync();
        await using var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using (var seed = new NpgsqlCommand("""
            INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json, pending_version, pending_json, pending_stamp_at)
            SELECT md5(n::text), 't' || (n % 500), 0, NULL, '\x00', n, NULL, 1, '{}', 0 FROM generate_series(1, 20000) n;
            INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
            SELECT md5(n::text), 't' || (n % 500), 1, 1000000 + n, '\x00', n, '{}' FROM generate_series(20001, 50000) n;
            ANALYZE patients;
            """, connection))
        {
            await seed.ExecuteNonQueryAsync();
        }

        await using var explain = new NpgsqlCommand("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + PostgresSequencer.ClockSql, connection);
        var text = string.Join('\n', await PostgresRows.FirstColumnAsync(explain));
        Assert.Contains("Index Only Scan Backward using patients_feed", text);
        Assert.DoesNotContain("Seq Scan", text);

        // Unstamped rows are in neither feed index: both leave them out by their predicate.
        await using var predicate = new NpgsqlCommand(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid IN ('patients_feed'::regclass, 'patients_tenant_feed'::regclass);", connection);
        Assert.Equal(["(last_updated IS NOT NULL)", "(last_updated IS NOT NULL)"], await PostgresRows.FirstColumnAsync(predicate));
    }

    [Fact]
    public async Task A_failing_apply_is_retried_after_a_growing_delay_and_fails_after_the_configured_attempts()
    {
        var options = new PostgresStoreOptions { MaxApplyAttempts = 3, ApplyRetryDelay = TimeSpan.FromSeconds(10), ApplyRetryMaxDelay = TimeSpan.FromSeconds(15) };
        await using var db = await PostgresTestDatabase.CreateAsync(server, options);
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var broken = Submissions.FromContent("t", """{"resourceType":"Practitioner"}""", [new PatientKey(Submissions.Fnr, "1")]);
        await store.Queue.AddSubmissionsAsync([broken], None);

        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(broken.Id, None))!.State);
        Assert.Equal((1, "ArgumentException"), await AttemptsAsync(db, broken.Id));

        // Not before the first delay (10 s) has passed.
        time.Advance(TimeSpan.FromSeconds(9));
        Assert.Equal(0, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(2, (await AttemptsAsync(db, broken.Id)).Attempts);

        // The second delay would be 20 s; capped at 15 s.
        time.Advance(TimeSpan.FromSeconds(14));
        Assert.Equal(0, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var record = (await store.Queue.GetSubmissionAsync(broken.Id, None))!;
        Assert.Equal(SubmissionState.Failed, record.State);
        Assert.Equal("Processing failed after 3 attempts: ArgumentException.", record.Reason);
        Assert.Equal(3, (await AttemptsAsync(db, broken.Id)).Attempts);
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(0, (await store.Queue.ApplyPendingAsync(10, None)).Count);
    }

    [Fact]
    public async Task A_database_error_is_charged_to_its_own_submission_and_the_rest_of_the_batch_is_applied()
    {
        var options = new PostgresStoreOptions { MaxApplyAttempts = 2, ApplyRetryDelay = TimeSpan.FromSeconds(1) };
        await using var db = await PostgresTestDatabase.CreateAsync(server, options);
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        await using (var connection = new NpgsqlConnection(db.ConnectionString))
        {
            await connection.OpenAsync();
            await using var constraint = new NpgsqlCommand("ALTER TABLE patient_keys ADD CONSTRAINT no_poison CHECK (value <> 'poison');", connection);
            await constraint.ExecuteNonQueryAsync();
        }

        var batch = new[] { Submissions.Create("t", "1"), Submissions.Create("t", "poison"), Submissions.Create("t", "2") };
        await store.Queue.AddSubmissionsAsync(batch, None);
        Assert.Equal(3, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(batch[0].Id, None))!.State);
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(batch[2].Id, None))!.State);
        Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(batch[1].Id, None))!.State);
        Assert.Equal((1, "PostgresException 23514"), await AttemptsAsync(db, batch[1].Id));

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        var failed = (await store.Queue.GetSubmissionAsync(batch[1].Id, None))!;
        Assert.Equal(SubmissionState.Failed, failed.State);
        Assert.Equal("Processing failed after 2 attempts: PostgresException 23514.", failed.Reason);
        Assert.Equal(2, (await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 10), None)).Rows.Count);
    }

    [Fact]
    public async Task A_connection_lost_in_the_middle_of_an_apply_is_not_counted_as_an_attempt()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server, new PostgresStoreOptions { MaxApplyAttempts = 1 });
        var store = await db.OpenStoreAsync();
        var first = Submissions.Create("t", "1", gender: "female");
        await store.Queue.AddSubmissionsAsync([first], None);
        await store.Queue.ApplyPendingAsync(10, None);
        var id = (await store.Queue.GetSubmissionAsync(first.Id, None))!.PatientId!;
        var second = Submissions.Create("t", "1", gender: "male");
        await store.Queue.AddSubmissionsAsync([second], None);

        // Hold the patient's row so the apply blocks on its write, then kill the apply's connection.
        await using var blocker = new NpgsqlConnection(db.ConnectionString);
        await blocker.OpenAsync();
        await using var tx = await blocker.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand("SELECT 1 FROM patients WHERE id = $1 FOR UPDATE;", blocker, tx) { Parameters = { new() { Value = id } } })
        {
            await hold.ExecuteNonQueryAsync();
        }

        var apply = Task.Run(() => store.Queue.ApplyPendingAsync(10, None));
        var killed = false;
        for (var i = 0; i < 1200 && !killed && !apply.IsCompleted; i++)
        {
            await Task.Delay(25);
            await using var kill = new NpgsqlCommand("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO patients%';
                """, blocker, tx);
            killed = await kill.ExecuteScalarAsync() is true;
        }

        Assert.True(killed, $"The apply never waited on the held row; it ended as {apply.Status}: {apply.Exception?.GetBaseException().Message}");
        await Assert.ThrowsAnyAsync<NpgsqlException>(() => apply);
        await tx.RollbackAsync();

        Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(second.Id, None))!.State);
        Assert.Equal(0, (await AttemptsAsync(db, second.Id)).Attempts);
        await RetryAsync(() => store.Queue.ApplyPendingAsync(10, None));
        var record = (await store.Queue.GetSubmissionAsync(second.Id, None))!;
        Assert.Equal(SubmissionState.Applied, record.State);
        Assert.Equal(2, record.PatientVersion);
    }

    [Fact]
    public async Task The_server_runs_on_the_Postgres_provider_and_migrates_at_start_up()
    {
        var connectionString = await server.CreateDatabaseAsync();
        await using (var app = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = connectionString,
        }))
        {
            Assert.IsType<PostgresPitStore>(app.Services.GetRequiredService<ISubmissionQueueStore>());
            Assert.IsType<PostgresDpopReplayCache>(app.Services.GetRequiredService<Pit.Server.Auth.IDpopReplayCache>());
            using var client = app.CreateClient();
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/ready")).StatusCode);
        }

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT max(version) FROM schema_migrations;", connection);
        Assert.Equal(PostgresSchema.LatestVersion, await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task MigrateOnStartup_false_refuses_to_start_on_a_store_without_its_schema_and_leaves_the_schema_alone()
    {
        var connectionString = await server.CreateDatabaseAsync();
        var refused = await Assert.ThrowsAsync<StoreSchemaException>(() => TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = connectionString,
            ["Pit:Storage:MigrateOnStartup"] = "false",
        }));
        Assert.Contains("migrate", refused.Message, StringComparison.Ordinal);

        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT to_regclass('schema_migrations') IS NULL;", connection);
        Assert.Equal(true, await command.ExecuteScalarAsync());
    }

    private static async Task<(int Attempts, string? LastError)> AttemptsAsync(PostgresTestDatabase db, Guid id)
    {
        await using var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT attempts, last_error FROM submissions WHERE id = $1;", connection) { Parameters = { new() { Value = id } } };
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1));
    }

    /// <summary>Retries <paramref name="action"/> on transient errors (a pooled connection broken by the test) for a few seconds.</summary>
    internal static async Task<T> RetryAsync<T>(Func<Task<T>> action)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await action();
            }
            catch (NpgsqlException ex) when (ex.IsTransient && attempt < 50)
            {
                await Task.Delay(100);
            }
        }
    }
}

/// <summary>The database goes away and comes back; the store must follow without a restart.</summary>
public sealed class PostgresOutageTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private static CancellationToken None => CancellationToken.None;

    [Fact]
    public async Task Health_check_fails_while_the_database_is_stopped_and_the_store_recovers_when_it_is_back()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var store = await db.OpenStoreAsync();
        await store.Health.CheckHealthAsync(None);
        var before = Submissions.Create("t", "1");
        await store.Queue.AddSubmissionsAsync([before], None);

        await server.StopAsync();
        try
        {
            // The outage surfaces as a transient database error (NpgsqlException or its PostgresException), nothing else.
            Assert.True((await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.Health.CheckHealthAsync(None))).IsTransient);
            Assert.True((await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.Health.CheckHealthAsync(None))).IsTransient);
            Assert.True((await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.Queue.AddSubmissionsAsync([Submissions.Create("t", "2")], None))).IsTransient);
            Assert.True((await Assert.ThrowsAnyAsync<NpgsqlException>(() => store.Queue.ApplyPendingAsync(10, None))).IsTransient);
        }
        finally
        {
            await server.StartAsync();
        }

        await PostgresPitStoreTests.RetryAsync(async () =>
        {
            await store.Health.CheckHealthAsync(None);
            return true;
        });
        Assert.Equal(1, (await PostgresPitStoreTests.RetryAsync(() => store.Queue.ApplyPendingAsync(10, None))).Count);
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(before.Id, None))!.State);
    }

    [Fact]
    public async Task A_database_restart_between_calls_costs_no_failed_call()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var store = await db.OpenStoreAsync();
        // Several idle pooled connections, all of which the restart will break.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => store.Health.CheckHealthAsync(None))));
        var before = Submissions.Create("t", "1");
        await store.Queue.AddSubmissionsAsync([before], None);

        await server.StopAsync();
        await server.StartAsync();

        var after = Submissions.Create("t", "2");
        await store.Queue.AddSubmissionsAsync([after], None);
        Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(before.Id, None))!.State);
        await store.Health.CheckHealthAsync(None);
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(2, (await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 10), None)).Rows.Count);
    }

    [Fact]
    public async Task The_ready_endpoint_fails_while_the_database_is_stopped()
    {
        await using var app = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await server.CreateDatabaseAsync(),
        });
        using var client = app.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/ready")).StatusCode);
        await server.StopAsync();
        try
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.GetAsync("health/ready")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/live")).StatusCode);
        }
        finally
        {
            await server.StartAsync();
        }

        var ready = HttpStatusCode.ServiceUnavailable;
        for (var i = 0; i < 50 && ready != HttpStatusCode.OK; i++)
        {
            ready = (await client.GetAsync("health/ready")).StatusCode;
            await Task.Delay(ready == HttpStatusCode.OK ? 0 : 100);
        }

        Assert.Equal(HttpStatusCode.OK, ready);
    }
}
