using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Pit.Server.Auth;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// PostgreSQL's parallel apply and its one sequencer: tenants apply at once under their own locks, versions stay
/// invisible until the sequencer stamps them, and the sequencer's leadership moves to another instance when its own dies.
/// </summary>
public sealed class PostgresSequencerTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private readonly string _data = Directory.CreateTempSubdirectory("pit-pg-seq-").FullName;

    private static CancellationToken None => CancellationToken.None;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task An_applied_version_is_invisible_and_its_submission_still_queued_until_the_sequencer_stamps_it()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var time = new ManualTimeProvider(Start);
        await using var engine = new PostgresPitStore(PostgresPitStore.CreateDataSource(db.ConnectionString), time, ownsDataSource: true);
        await engine.MigrateAsync(None);
        var first = Submissions.Create("999999999", "12345678901", family: "First");
        await engine.AddSubmissionsAsync([first], None);

        var applied = await engine.ApplyPendingAsync(10, long.MaxValue, None);
        Assert.Equal(1, applied.Count);
        Assert.True(applied.StampedLater);
        var id = await ScalarAsync<string>(db, "SELECT id FROM patients;");
        var waiting = (await engine.GetSubmissionAsync(first.Id, None))!;
        Assert.Equal((SubmissionState.Queued, null, null, null), (waiting.State, waiting.ProcessedAt, waiting.PatientId, waiting.PatientVersion));
        Assert.Null(await engine.GetPatientAsync(id, None));
        Assert.Empty((await engine.SearchAsync(new PatientPageQuery(null, false, null, null, null, 10), None)).Rows);
        Assert.Empty((await engine.SearchAsync(new PatientPageQuery("999999999", true, null, null, null, 10), None)).Rows);

        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(1, await engine.StampPendingAsync(None));
        var processed = (await engine.GetSubmissionAsync(first.Id, None))!;
        Assert.Equal((SubmissionState.Applied, id, 1), (processed.State, processed.PatientId, processed.PatientVersion));
        var v1 = (await engine.GetPatientAsync(id, None))!;
        Assert.Equal(FeedTime.FromDateTimeOffset(Start.AddSeconds(5)), v1.LastUpdated);
        Assert.Equal(FeedTime.Format(v1.LastUpdated), (string?)JsonNode.Parse(v1.Json)!["meta"]!["lastUpdated"]);

        // A second version waits unstamped while the first stays readable, whole and unchanged.
        var second = Submissions.Create("999999999", "12345678901", family: "Second");
        await engine.AddSubmissionsAsync([second], None);
        Assert.Equal(1, (await engine.ApplyPendingAsync(10, long.MaxValue, None)).Count);
        Assert.Equal(SubmissionState.Queued, (await engine.GetSubmissionAsync(second.Id, None))!.State);
        var still = (await engine.GetPatientAsync(id, None))!;
        Assert.Equal((1, v1.LastUpdated), (still.Version, still.LastUpdated));
        Assert.Equal(v1.Json, still.Json);

        // The wall clock went back: the stamp still goes above the last one.
        time.Advance(TimeSpan.FromSeconds(-60));
        Assert.Equal(1, await engine.StampPendingAsync(None));
        var v2 = (await engine.GetPatientAsync(id, None))!;
        Assert.Equal((2, v1.LastUpdated + 1), (v2.Version, v2.LastUpdated));
        var json = JsonNode.Parse(v2.Json)!;
        Assert.Equal(("2", FeedTime.Format(v2.LastUpdated), "Second"), ((string?)json["meta"]!["versionId"], (string?)json["meta"]!["lastUpdated"], (string?)json["name"]![0]!["family"]));
        Assert.Equal((SubmissionState.Applied, 2), ((await engine.GetSubmissionAsync(second.Id, None))!.State, (await engine.GetSubmissionAsync(second.Id, None))!.PatientVersion));
        Assert.Equal(0, await engine.StampPendingAsync(None));
    }

    [Fact]
    public async Task Visibility_lag_is_recorded_when_the_sequencer_stamps_a_version_not_when_the_processor_applies_it()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var time = new ManualTimeProvider(Start);
        await using var dataSource = PostgresPitStore.CreateDataSource(db.ConnectionString);
        await using var engine = new PostgresPitStore(dataSource, time);
        await engine.MigrateAsync(None);
        await engine.AddSubmissionsAsync([Submissions.Create("999999999", "12345678901", acceptedAt: FeedTime.FromDateTimeOffset(Start))], None);

        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new PitMetrics(services.GetRequiredService<IMeterFactory>());
        var lags = new ConcurrentQueue<double>();
        var lagRecorded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var applied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, metrics.Meter))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == "pit.submissions.visibility_lag")
            {
                lags.Enqueue(value);
                lagRecorded.TrySetResult();
            }
        });
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "pit.submissions.applied" && value > 0)
            {
                applied.TrySetResult();
            }
        });
        listener.Start();
        var options = Options.Create(new ProcessingOptions { PollInterval = TimeSpan.FromMilliseconds(50) });

        // Applied two seconds after acceptance: written unstamped, invisible, so nothing is recorded yet.
        time.Advance(TimeSpan.FromSeconds(2));
        var processor = new SubmissionProcessor(engine, new ProcessingSignal(), new RecordingFeed(), metrics, time, options, NullLogger<SubmissionProcessor>.Instance);
        await processor.StartAsync(None);
        await applied.Task.WaitAsync(Deadline);
        await processor.StopAsync(None);
        Assert.Empty(lags);

        // Stamped five seconds after acceptance: that is when readers see it.
        time.Advance(TimeSpan.FromSeconds(3));
        var feed = new RecordingFeed();
        using var sequencer = new PostgresSequencer(
            dataSource, feed, metrics, time, Options.Create(new PostgresSequencerOptions()), new StartedLifetime(), NullLogger<PostgresSequencer>.Instance);
        await sequencer.StartAsync(None);
        await lagRecorded.Task.WaitAsync(Deadline);
        await sequencer.StopAsync(None);

        Assert.Equal(5.0, Assert.Single(lags));
        Assert.Equal("999999999", Assert.Single(Assert.Single(feed.Published)));
        Assert.Equal(SubmissionState.Applied, (await engine.GetSubmissionAsync(
            await ScalarAsync<Guid>(db, "SELECT id FROM submissions;"), None))!.State);
    }

    [Fact]
    public async Task A_long_queue_without_statistics_is_read_from_its_head_in_index_order_not_scanned_whole()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        await using (var engine = new PostgresPitStore(PostgresPitStore.CreateDataSource(db.ConnectionString), new ManualTimeProvider(Start), ownsDataSource: true))
        {
            await engine.MigrateAsync(None);
        }

        // Queued all at once and never analysed, as in a drain: the planner guesses a few hundred queued rows.
        await using var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        await using (var fill = new NpgsqlCommand("""
            INSERT INTO submissions (id, tenant, client_id, content, content_hash, key_systems, key_values, accepted_at)
            SELECT gen_random_uuid(), (900000000 + i % 100)::text, 'c', '\x00', '\x00', '{}', '{}', 0 FROM generate_series(1, 50000) i;
            """, connection))
        {
            await fill.ExecuteNonQueryAsync();
        }

        await using var tx = await connection.BeginTransactionAsync();
        foreach (var setting in (string[])[PostgresPitStore.CustomPlans, .. PostgresPitStore.QueueInOrder])
        {
            await using var set = new NpgsqlCommand(setting, connection, tx);
            await set.ExecuteNonQueryAsync();
        }

        var candidates = await PlanAsync(connection, tx, PostgresPitStore.CandidateTenantsSql, long.MaxValue, 1024);
        var claim = await PlanAsync(connection, tx, PostgresPitStore.ClaimSql, long.MaxValue, 256, long.MaxValue, new[] { "900000001" }, 1024L);
        foreach (var plan in new[] { candidates, claim })
        {
            Assert.Contains("Index Scan using submissions_queued", plan, StringComparison.Ordinal);
            Assert.DoesNotContain("Bitmap", plan, StringComparison.Ordinal);
            Assert.DoesNotContain("Seq Scan", plan, StringComparison.Ordinal);
        }
    }

    private static async Task<string> PlanAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, params object[] parameters)
    {
        await using var explain = new NpgsqlCommand("EXPLAIN " + sql, connection, tx);
        foreach (var parameter in parameters)
        {
            explain.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        return string.Join('\n', await PostgresRows.FirstColumnAsync(explain));
    }

    [Fact]
    public async Task A_tenant_whose_apply_is_held_open_does_not_hold_back_another_tenants_submissions()
    {
        var connectionString = await server.CreateDatabaseAsync();
        await using var app = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = connectionString,
        });
        var (held, free) = (Organisations(2)[0], Organisations(2)[1]);
        using var heldClient = app.CreateClient(organisation: held);
        using var freeClient = app.CreateClient(organisation: free);

        // The test's own transaction holds the held tenant's apply lock, as a long apply transaction would.
        await using var blocker = new NpgsqlConnection(connectionString);
        await blocker.OpenAsync();
        var tx = await blocker.BeginTransactionAsync();
        await using (var hold = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgresSchema.TenantApplyLockClass}, hashtext($1));", blocker, tx))
        {
            hold.Parameters.Add(new NpgsqlParameter<string> { TypedValue = held });
            await hold.ExecuteNonQueryAsync();
        }

        var heldStatus = await heldClient.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Held"));
        var freeStatus = await freeClient.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Free"));

        // Submitted after the held one, yet applied, stamped and readable while the held one waits.
        var (status, _, location) = await freeClient.WaitProcessedAsync(freeStatus);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Free", (string?)(await freeClient.GetJsonAsync(location!.ToString(), HttpStatusCode.OK))["name"]![0]!["family"]);
        using (var waiting = await heldClient.GetAsync(heldStatus))
        {
            Assert.Equal(HttpStatusCode.Accepted, waiting.StatusCode);
        }

        Assert.Empty((await heldClient.GetJsonAsync("v1/Patient", HttpStatusCode.OK)).Resources());

        await tx.RollbackAsync();
        Assert.Equal(HttpStatusCode.OK, (await heldClient.WaitProcessedAsync(heldStatus)).Status);
        Assert.Equal("Held", (string?)Assert.Single((await heldClient.GetJsonAsync("v1/Patient", HttpStatusCode.OK)).Resources())["name"]![0]!["family"]);
    }

    [Fact]
    public async Task Several_instances_applying_many_organisations_at_once_show_each_polling_reader_every_version_once_in_order()
    {
        var connectionString = await server.CreateDatabaseAsync();
        var instances = await StartInstancesAsync(connectionString, 3);
        try
        {
            var organisations = Organisations(6);
            var accepted = new ConcurrentBag<(string Organisation, Uri Status)>();
            var people = organisations.ToDictionary(o => o, _ => Enumerable.Range(0, 8).Select(_ => TestPatients.NewFnr()).ToArray());
            var clients = organisations.ToDictionary(o => o, o => instances.Select(i => i.CreateClient(o)).ToArray());
            using var done = new CancellationTokenSource();
            var consumers = organisations.Take(3).Select(o => new ChangeFeedConsumer(clients[o])).ToList();
            var consuming = consumers.Select(c => c.RunAsync(done.Token)).ToList();

            await Task.WhenAll(organisations.Select((organisation, worker) => Task.Run(async () =>
            {
                var random = new Random(worker);
                for (var i = 0; i < 30; i++)
                {
                    var client = clients[organisation][i % instances.Count];
                    var fnr = people[organisation][i < 8 ? i : random.Next(8)];
                    accepted.Add((organisation, await client.SubmitAsync(TestPatients.Json(fnr, family: $"F{worker}-{i}"))));
                }
            })));

            foreach (var (organisation, url) in accepted)
            {
                Assert.Equal(HttpStatusCode.OK, (await clients[organisation][0].WaitProcessedAsync(url)).Status);
            }

            await done.CancelAsync();
            await Task.WhenAll(consuming);
            for (var i = 0; i < consumers.Count; i++)
            {
                await consumers[i].AssertCompleteAsync(clients[organisations[i]][0], people[organisations[i]].Length);
            }

            await AssertAllStampedOnceAsync(connectionString, organisations.Length * 8);
            Assert.Equal(1L, await ScalarAsync<long>(connectionString, SequencerLeadersSql));
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Killing_the_sequencers_instance_mid_run_hands_the_stamping_to_another_and_stamps_nothing_twice_or_never()
    {
        var connectionString = await server.CreateDatabaseAsync();
        var instances = await StartInstancesAsync(connectionString, 3);
        try
        {
            var leaderName = await WaitForAsync(() => LeaderAsync(connectionString), name => name is not null, "a sequencer leader");
            var leader = instances[int.Parse(leaderName![^1..], System.Globalization.CultureInfo.InvariantCulture)];
            var survivors = instances.Where(i => i != leader).ToList();
            var organisations = Organisations(4);
            var clients = organisations.ToDictionary(o => o, o => survivors.Select(i => i.CreateClient(o)).ToArray());
            var people = organisations.ToDictionary(o => o, _ => Enumerable.Range(0, 6).Select(_ => TestPatients.NewFnr()).ToArray());
            var accepted = new ConcurrentBag<(string Organisation, Uri Status)>();
            using var done = new CancellationTokenSource();
            var consumer = new ChangeFeedConsumer(clients[organisations[0]]);
            var consuming = consumer.RunAsync(done.Token);

            // Writers go to the other instances only (their 202s must all end up visible); the leader applies too.
            var writers = organisations.Select((organisation, worker) => Task.Run(async () =>
            {
                var random = new Random(worker);
                for (var i = 0; i < 40; i++)
                {
                    var fnr = people[organisation][i < 6 ? i : random.Next(6)];
                    accepted.Add((organisation, await clients[organisation][i % survivors.Count].SubmitAsync(TestPatients.Json(fnr, family: $"F{worker}-{i}"))));
                }
            })).ToList();

            await WaitForAsync(() => Task.FromResult(accepted.Count), n => n >= 60, "60 accepted submissions before the kill");
            await leader.KillAsync();
            await Task.WhenAll(writers);

            var next = await WaitForAsync(() => LeaderAsync(connectionString), name => name is not null && name != leaderName, "another sequencer leader");
            Assert.Contains(next, survivors.Select(s => ApplicationName(instances.IndexOf(s))));
            foreach (var (organisation, url) in accepted)
            {
                Assert.Equal(HttpStatusCode.OK, (await clients[organisation][0].WaitProcessedAsync(url)).Status);
            }

            await done.CancelAsync();
            await consuming;
            await consumer.AssertCompleteAsync(clients[organisations[0]][0], people[organisations[0]].Length);
            await AssertAllStampedOnceAsync(connectionString, organisations.Length * 6);
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    /// <summary>The backends holding the sequencer's session lock, by application name.</summary>
    private static readonly string SequencerLeadersSql = $"""
        SELECT count(*) FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid::bigint = {PostgresSchema.SequencerLockKey >> 32} AND l.objid::bigint = {PostgresSchema.SequencerLockKey & 0xFFFF_FFFF};
        """;

    private static async Task<string?> LeaderAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"""
            SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.classid::bigint = {PostgresSchema.SequencerLockKey >> 32} AND l.objid::bigint = {PostgresSchema.SequencerLockKey & 0xFFFF_FFFF};
            """, connection);
        return await command.ExecuteScalarAsync() as string;
    }

    /// <summary>No version left unstamped, every Patient visible once, stamps unique (the feed index is unique) and in JSON.</summary>
    private static async Task AssertAllStampedOnceAsync(string connectionString, int patients)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            SELECT count(*) FILTER (WHERE pending_version IS NOT NULL OR last_updated IS NULL),
                   count(*), count(DISTINCT last_updated),
                   count(*) FILTER (WHERE convert_from(json, 'UTF8')::jsonb #>> '{meta,versionId}' <> version::text)
            FROM patients;
            """, connection);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal((0L, (long)patients, (long)patients, 0L), (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
        await reader.CloseAsync();

        // Each stamp is in the JSON, at the stored precision.
        await using var stamps = new NpgsqlCommand("SELECT last_updated, convert_from(json, 'UTF8')::jsonb #>> '{meta,lastUpdated}' FROM patients;", connection);
        await using var rows = await stamps.ExecuteReaderAsync();
        while (await rows.ReadAsync())
        {
            Assert.Equal(FeedTime.Format(rows.GetInt64(0)), rows.GetString(1));
        }
    }

    private async Task<List<ServerProcess>> StartInstancesAsync(string connectionString, int count)
    {
        var instances = new List<ServerProcess>();
        for (var i = 0; i < count; i++)
        {
            var folder = Directory.CreateDirectory(Path.Combine(_data, $"instance-{i}")).FullName;
            instances.Add(await ServerProcess.StartAsync(KillUnderLoad.ServerDll, folder, new Dictionary<string, string?>
            {
                ["Pit:Storage:Provider"] = "Postgres",
                // Each instance names its connections, so the test can tell which one leads the sequencer.
                ["Pit:Storage:ConnectionString"] = $"{connectionString};Application Name={ApplicationName(i)}",
                ["Pit:Auth:StandIn:Issuer"] = "http://127.0.0.1/pit-sequencer-tests",
                ["Pit:Processing:BatchSize"] = "8",
                ["Pit:RateLimiting:Enabled"] = "false",
            }));
        }

        return instances;
    }

    private static string ApplicationName(int instance) => $"pit-seq-{instance}";

    /// <summary>The tenants of each wake-up of the feed's waiters.</summary>
    private sealed class RecordingFeed : IFeedChangeNotifier
    {
        public ConcurrentQueue<IReadOnlyCollection<string>> Published { get; } = new();

        public Task PublishAsync(IReadOnlyCollection<string> tenants, CancellationToken cancellationToken)
        {
            Published.Enqueue([.. tenants]);
            return Task.CompletedTask;
        }
    }

    /// <summary>A host that has started (the sequencer waits for that) and never stops on its own.</summary>
    private sealed class StartedLifetime : IHostApplicationLifetime
    {
        public CancellationToken ApplicationStarted { get; } = new(canceled: true);

        public CancellationToken ApplicationStopping => CancellationToken.None;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication()
        {
        }
    }

    /// <summary>Valid organisation numbers (mod 11), distinct tenants.</summary>
    private static string[] Organisations(int count) =>
        [.. Enumerable.Range(100_000, 1_000).SelectMany(n => Enumerable.Range(0, 10).Select(d => $"91{n:D6}{d}")).Where(OrganisationNumber.IsValid).Take(count)];

    private static async Task<T> ScalarAsync<T>(PostgresTestDatabase db, string sql) => await ScalarAsync<T>(db.ConnectionString, sql);

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Polls <paramref name="read"/> until <paramref name="done"/> holds; fails after <see cref="Deadline"/>.</summary>
    private static async Task<T> WaitForAsync<T>(Func<Task<T>> read, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow + Deadline;
        while (true)
        {
            var value = await read();
            if (done(value))
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}; last saw {value}.");
            await Task.Delay(50);
        }
    }
}
