using System.Collections.Concurrent;
using System.Text.Json;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>The contract, continued: keyset pages, the clock, concurrent appliers, failures, secrets and audit.</summary>
public abstract partial class PitStoreContractTests
{
    [Fact]
    public async Task Keyset_pages_return_every_row_in_bounds_exactly_once_in_both_directions()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        for (var i = 0; i < 30; i++)
        {
            await store.Queue.AddSubmissionsAsync([Submissions.Create(i % 3 == 0 ? TenantB : TenantA, $"p{i}")], None);
            await store.Queue.ApplyPendingAsync(10, None);
            time.Advance(TimeSpan.FromMilliseconds(i % 4 == 0 ? 0 : 3));
        }

        var all = (await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 50), None)).Rows;
        Assert.Equal(30, all.Count);
        var from = all[5].LastUpdated;
        var to = all[24].LastUpdated;
        foreach (var tenant in new string?[] { null, TenantA, TenantB })
        {
            foreach (var (lower, upper) in new (long?, long?)[] { (null, null), (from, to), (from, null), (null, to) })
            {
                var expected = all
                    .Where(p => (tenant is null || p.Tenant == tenant) && (lower is null || p.LastUpdated >= lower) && (upper is null || p.LastUpdated < upper))
                    .Select(p => p.Id).ToList();
                foreach (var descending in new[] { false, true })
                {
                    var pages = new List<string>();
                    PagePosition? after = null;
                    while (true)
                    {
                        var page = (await store.Feed.SearchAsync(new PatientPageQuery(tenant, descending, lower, upper, after, 4), None)).Rows;
                        Assert.True(page.Count <= 4);
                        pages.AddRange(page.Select(p => p.Id));
                        if (page.Count < 4)
                        {
                            break;
                        }

                        after = new PagePosition(page[^1].LastUpdated, page[^1].Id);
                    }

                    Assert.Equal(descending ? Enumerable.Reverse(expected) : expected, pages);
                }
            }
        }
    }

    [Fact]
    public async Task A_page_ends_before_the_row_that_would_pass_its_byte_cap_and_the_next_page_starts_with_that_row()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        // Family names of these lengths make rows from about 300 bytes to about 20 KB; the cap is 4 KiB.
        int[] padding = [100, 3000, 200, 200, 9000, 100, 2500, 2500, 100, 20000, 50, 50, 1000, 1000, 1000, 1000, 1000, 1000];
        for (var i = 0; i < padding.Length; i++)
        {
            await store.Queue.AddSubmissionsAsync([Submissions.Create(TenantA, $"p{i}", family: new string('x', padding[i]))], None);
            await store.Queue.ApplyPendingAsync(10, None);
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        const long Cap = 4096;
        const int Count = 3;
        var all = (await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 50), None)).Rows;
        Assert.Equal(padding.Length, all.Count);
        foreach (var descending in new[] { false, true })
        {
            var ordered = descending ? all.Reverse().ToList() : [.. all];

            // The rule, applied by hand: a page takes rows while they fit both the count and the cap, its first row always.
            var expected = new List<List<string>>();
            var current = new List<string>();
            long bytes = 0;
            foreach (var row in ordered)
            {
                if (current.Count == Count || (current.Count > 0 && bytes + row.Json.Length > Cap))
                {
                    expected.Add(current);
                    current = [];
                    bytes = 0;
                }

                current.Add(row.Id);
                bytes += row.Json.Length;
            }

            expected.Add(current);
            Assert.Contains(expected, page => page.Count == 1 && all.Single(r => r.Id == page[0]).Json.Length > Cap); // a row over the cap, alone
            Assert.Contains(expected, page => page.Count < Count && page.Sum(id => all.Single(r => r.Id == id).Json.Length) <= Cap); // cut by bytes

            var pages = new List<List<string>>();
            PagePosition? after = null;
            while (true)
            {
                var page = await store.Feed.SearchAsync(new PatientPageQuery(TenantA, descending, null, null, after, Count, Cap), None);
                Assert.NotEmpty(page.Rows);
                Assert.True(page.Rows.Count == 1 || page.Rows.Sum(r => (long)r.Json.Length) <= Cap);
                Assert.All(page.Rows, r => Assert.Equal(all.Single(a => a.Id == r.Id).Json, r.Json));
                pages.Add([.. page.Rows.Select(r => r.Id)]);
                if (!page.More)
                {
                    break;
                }

                after = new PagePosition(page.Rows[^1].LastUpdated, page.Rows[^1].Id);
            }

            Assert.Equal(expected, pages);
        }
    }

    [Fact]
    public async Task A_page_says_whether_rows_follow_it()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var empty = await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 2), None);
        Assert.Equal((0, false), (empty.Rows.Count, empty.More));
        for (var i = 0; i < 4; i++)
        {
            await store.Queue.AddSubmissionsAsync([Submissions.Create(TenantA, $"p{i}")], None);
        }

        await store.Queue.ApplyPendingAsync(10, None);
        var first = await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 2), None);
        Assert.Equal((2, true), (first.Rows.Count, first.More));
        var second = await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, new PagePosition(first.Rows[^1].LastUpdated, first.Rows[^1].Id), 2), None);
        Assert.Equal((2, false), (second.Rows.Count, second.More));
        var none = await store.Feed.SearchAsync(new PatientPageQuery(TenantB, false, null, null, null, 2), None);
        Assert.Equal((0, false), (none.Rows.Count, none.More));
    }

    [Fact]
    public async Task LastUpdated_is_strictly_increasing_even_when_the_clock_stands_still_or_goes_back()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var previous = 0L;
        for (var round = 0; round < 6; round++)
        {
            await store.Queue.AddSubmissionsAsync(
                Enumerable.Range(0, 10).Select(i => Submissions.Create(TenantA, $"p{i}", gender: round % 2 == 0 ? "female" : "male")).ToList(), None);
            await store.Queue.ApplyPendingAsync(4, None);
            await store.Queue.ApplyPendingAsync(100, None);
            time.Advance(round == 2 ? TimeSpan.FromHours(-1) : TimeSpan.Zero);
            var feed = (await store.Feed.SearchAsync(new PatientPageQuery(null, false, previous + 1, null, null, 50), None)).Rows;
            Assert.Equal(10, feed.Count);
            Assert.All(feed.Zip(feed.Skip(1)), pair => Assert.True(pair.First.LastUpdated < pair.Second.LastUpdated));
            Assert.True(feed[0].LastUpdated > previous);
            previous = feed[^1].LastUpdated;
        }
    }

    [Fact]
    public async Task Concurrent_appliers_apply_each_submission_once_and_a_polling_reader_sees_every_version_in_order()
    {
        await using var db = await CreateDatabaseAsync();
        // A clock that stands still: lastUpdated order must come from commit order, not from the clock.
        var time = new ManualTimeProvider(Start);
        var stores = new List<StoreUnderTest>();
        for (var i = 0; i < (db.SupportsSeveralInstances ? 3 : 1); i++)
        {
            stores.Add(await db.OpenStoreAsync(time));
        }

        const int Patients = 25;
        const int Batches = 20;
        const int PerBatch = 10;
        string[] variants = ["female", "male", "other"];
        var accepted = new ConcurrentBag<(NewSubmission Submission, string Key, string Gender)>();
        var submitting = true;
        var submitter = Task.Run(async () =>
        {
            try
            {
                for (var b = 0; b < Batches; b++)
                {
                    var batch = Enumerable.Range(0, PerBatch).Select(i =>
                    {
                        var key = $"p{Random.Shared.Next(Patients)}";
                        var gender = variants[Random.Shared.Next(variants.Length)];
                        return (Submission: Submissions.Create(TenantA, key, gender), Key: key, Gender: gender);
                    }).ToList();
                    await stores[b % stores.Count].Queue.AddSubmissionsAsync(batch.Select(x => x.Submission).ToList(), None);
                    batch.ForEach(accepted.Add);
                }
            }
            finally
            {
                Volatile.Write(ref submitting, false);
            }
        });

        var appliers = Enumerable.Range(0, 4).Select(n => Task.Run(async () =>
        {
            var store = stores[n % stores.Count];
            var taken = 0;
            while (true)
            {
                var wasSubmitting = Volatile.Read(ref submitting);
                var count = (await store.Queue.ApplyPendingAsync(3, None)).Count;
                taken += count;
                if (count == 0 && !wasSubmitting)
                {
                    return taken;
                }

                if (count == 0)
                {
                    await Task.Delay(1);
                }
            }
        })).ToList();

        var seen = new List<PatientRecord>();
        var appliersDone = Task.WhenAll(appliers);
        var reader = stores[^1];
        while (true)
        {
            var done = appliersDone.IsCompleted;
            while (true)
            {
                PagePosition? after = seen.Count == 0 ? null : new PagePosition(seen[^1].LastUpdated, seen[^1].Id);
                var page = (await reader.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, after, 7), None)).Rows;
                seen.AddRange(page);
                if (page.Count < 7)
                {
                    break;
                }
            }

            if (done)
            {
                break;
            }

            await Task.Delay(2);
        }

        await submitter;
        var taken = (await appliersDone).Sum();
        Assert.Equal(Batches * PerBatch, taken);

        var records = new List<(SubmissionRecord Record, string Key, string Gender)>();
        foreach (var (submission, key, gender) in accepted)
        {
            records.Add(((await reader.Queue.GetSubmissionAsync(submission.Id, None))!, key, gender));
        }

        Assert.DoesNotContain(records, r => r.Record.State is SubmissionState.Queued or SubmissionState.Failed);
        foreach (var patient in records.GroupBy(r => r.Key))
        {
            var ids = patient.Select(r => r.Record.PatientId).Distinct().ToList();
            var id = Assert.Single(ids)!;
            var versions = patient.Where(r => r.Record.State == SubmissionState.Applied).Select(r => r.Record.PatientVersion!.Value).Order().ToList();
            Assert.Equal(Enumerable.Range(1, versions.Count), versions);

            // Last accepted wins.
            var current = (await reader.Feed.GetPatientAsync(id, None))!;
            Assert.Equal(versions.Count, current.Version);
            using var json = JsonDocument.Parse(current.Json);
            Assert.Equal(patient.MaxBy(r => r.Record.Sequence).Gender, json.RootElement.GetProperty("gender").GetString());

            // The poller never missed the final version.
            Assert.Equal(current.Version, seen.Where(s => s.Id == id).Max(s => s.Version));
        }

        // No repeats and no reordering: the poller saw lastUpdated strictly increasing.
        Assert.All(seen.Zip(seen.Skip(1)), pair => Assert.True(pair.First.LastUpdated < pair.Second.LastUpdated));
    }

    [Fact]
    public async Task A_submission_that_keeps_failing_ends_failed_with_a_reason_without_blocking_the_queue()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        // Not canonical (resourceType is not first): composing the stored JSON throws, on every attempt.
        var broken = Submissions.FromContent(TenantA,
            """{"identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"1"}],"resourceType":"Patient"}""",
            [new PatientKey(Submissions.Fnr, "1")]);
        var good = Submissions.Create(TenantA, "2");
        await store.Queue.AddSubmissionsAsync([broken, good], None);

        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(good.Id, None))!.State);
        for (var i = 0; i < 20 && (await store.Queue.GetSubmissionAsync(broken.Id, None))!.State == SubmissionState.Queued; i++)
        {
            time.Advance(TimeSpan.FromMinutes(2));
            await store.Queue.ApplyPendingAsync(10, None);
        }

        var record = (await store.Queue.GetSubmissionAsync(broken.Id, None))!;
        Assert.Equal(SubmissionState.Failed, record.State);
        Assert.False(string.IsNullOrWhiteSpace(record.Reason));
        Assert.Null(record.PatientId);
        Assert.Equal(0, (await store.Queue.ApplyPendingAsync(10, None)).Count);
    }

    [Fact]
    public async Task Secrets_are_created_once_and_the_first_writer_wins()
    {
        await using var db = await CreateDatabaseAsync();
        var stores = new List<StoreUnderTest>();
        for (var i = 0; i < (db.SupportsSeveralInstances ? 3 : 1); i++)
        {
            stores.Add(await db.OpenStoreAsync());
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 9).Select(n => Task.Run(() =>
            stores[n % stores.Count].Secrets.GetOrCreateSecretAsync("cursor", () => [(byte)n, .. new byte[31]], None))));
        Assert.All(results, r => Assert.Equal(results[0], r));
        Assert.Equal(32, results[0].Length);
        Assert.Equal(results[0], await (await db.OpenStoreAsync()).Secrets.GetOrCreateSecretAsync("cursor", () => new byte[32], None));
        Assert.Equal(new byte[] { 7 }, await stores[0].Secrets.GetOrCreateSecretAsync("other", () => [7], None));
    }

    [Fact]
    public async Task Audit_entries_are_read_back_newest_first_and_per_organisation()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var first = new AuditEntry(1, "submit", "client-1", TenantA, "974600000", Guid.NewGuid(), null, 202, "accepted");
        var second = new AuditEntry(2, "search", "client-2", TenantB, null, null, "a,b", 200, "ok");
        var third = new AuditEntry(3, "read", "client-1", TenantA, null, null, "c", 404, "not found");
        await store.Audit.AppendAuditAsync([first, second], None);
        await store.Audit.AppendAuditAsync([third], None);
        await store.Audit.AppendAuditAsync([], None);

        Assert.Equal([third, second, first], await store.Audit.ReadAuditAsync(null, 10, None));
        Assert.Equal([third, first], await store.Audit.ReadAuditAsync(TenantA, 10, None));
        Assert.Equal([third], await store.Audit.ReadAuditAsync(null, 1, None));
        Assert.Empty(await store.Audit.ReadAuditAsync("000000000", 10, None));
    }

    [Fact]
    public async Task Initialize_is_idempotent_and_keeps_the_data()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var submission = Submissions.Create(TenantA, "1");
        await store.Queue.AddSubmissionsAsync([submission], None);
        await store.Migrator.MigrateAsync(None);
        var again = await db.OpenStoreAsync();
        Assert.NotNull(await again.Queue.GetSubmissionAsync(submission.Id, None));
        await again.Health.CheckHealthAsync(None);
    }
}
