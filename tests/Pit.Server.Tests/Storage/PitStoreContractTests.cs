using System.Collections.Concurrent;
using System.Text.Json;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// The storage contract: every engine runs these same tests through the store interfaces
/// (<see cref="SqlitePitStoreContractTests"/>, <see cref="PostgresPitStoreContractTests"/>).
/// </summary>
public abstract class PitStoreContractTests
{
    private const string TenantA = "999999999";
    private const string TenantB = "888888888";
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private protected abstract Task<StoreTestDatabase> CreateDatabaseAsync();

    private static CancellationToken None => CancellationToken.None;

    [Fact]
    public async Task Accepted_submissions_are_durable_in_list_order_and_visible_from_a_fresh_store_instance()
    {
        await using var db = await CreateDatabaseAsync();
        var writer = await db.OpenStoreAsync();
        var batch = new[] { Submissions.Create(TenantA, "1"), Submissions.Create(TenantA, "2"), Submissions.Create(TenantB, "3") };
        await writer.Queue.AddSubmissionsAsync(batch, None);

        var reader = await db.OpenStoreAsync();
        var records = new List<SubmissionRecord>();
        foreach (var s in batch)
        {
            var record = await reader.Queue.GetSubmissionAsync(s.Id, None);
            Assert.NotNull(record);
            Assert.Equal(SubmissionState.Queued, record.State);
            Assert.Equal(s.Tenant, record.Tenant);
            Assert.Equal(s.AcceptedAt, record.AcceptedAt);
            Assert.Null(record.ProcessedAt);
            records.Add(record);
        }

        Assert.True(records[0].Sequence < records[1].Sequence && records[1].Sequence < records[2].Sequence);
        Assert.Null(await reader.Queue.GetSubmissionAsync(Guid.NewGuid(), None));
        Assert.Null(await reader.Feed.GetPatientAsync("no-such-patient", None));
    }

    [Fact]
    public async Task Queue_statistics_count_the_pending_submissions_and_give_the_oldest_acceptance_time()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        Assert.Equal(new QueueStatistics(0, null), await store.Queue.GetQueueStatisticsAsync(None));

        await store.Queue.AddSubmissionsAsync([Submissions.Create(TenantA, "1", acceptedAt: 1_000), Submissions.Create(TenantB, "2", acceptedAt: 2_000)], None);
        await store.Queue.AddSubmissionsAsync([Submissions.Create(TenantA, "3", acceptedAt: 3_000)], None);
        Assert.Equal(new QueueStatistics(3, 1_000), await store.Queue.GetQueueStatisticsAsync(None));

        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(1, None)).Count);
        Assert.Equal(new QueueStatistics(2, 2_000), await store.Queue.GetQueueStatisticsAsync(None));
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(new QueueStatistics(0, null), await store.Queue.GetQueueStatisticsAsync(None));
    }

    [Fact]
    public async Task Applying_a_new_submission_creates_version_1_with_id_meta_and_tenant_tag()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var submission = Submissions.Create(TenantA, "12345678901", family: "Nordmann");
        await store.Queue.AddSubmissionsAsync([submission], None);

        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        Assert.Equal(0, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var record = (await store.Queue.GetSubmissionAsync(submission.Id, None))!;
        Assert.Equal(SubmissionState.Applied, record.State);
        Assert.Equal(1, record.PatientVersion);
        Assert.Equal(FeedTime.FromDateTimeOffset(Start), record.ProcessedAt);
        var patient = (await store.Feed.GetPatientAsync(record.PatientId!, None))!;
        Assert.Equal(record.PatientId, patient.Id);
        Assert.Equal(TenantA, patient.Tenant);
        Assert.Equal(1, patient.Version);
        Assert.Equal(FeedTime.FromDateTimeOffset(Start), patient.LastUpdated);

        using var json = JsonDocument.Parse(patient.Json);
        var root = json.RootElement;
        Assert.Equal("Patient", root.GetProperty("resourceType").GetString());
        Assert.Equal(patient.Id, root.GetProperty("id").GetString());
        var meta = root.GetProperty("meta");
        Assert.Equal("1", meta.GetProperty("versionId").GetString());
        Assert.Equal(FeedTime.Format(patient.LastUpdated), meta.GetProperty("lastUpdated").GetString());
        var tag = Assert.Single(meta.GetProperty("tag").EnumerateArray());
        Assert.Equal("urn:oid:2.16.578.1.12.4.1.4.101", tag.GetProperty("system").GetString());
        Assert.Equal(TenantA, tag.GetProperty("code").GetString());
        Assert.Equal("12345678901", root.GetProperty("identifier")[0].GetProperty("value").GetString());
        Assert.Equal("Nordmann", root.GetProperty("name")[0].GetProperty("family").GetString());
        Assert.Equal("female", root.GetProperty("gender").GetString());
    }

    [Fact]
    public async Task Changed_content_for_the_same_identifier_creates_version_2_of_the_same_patient()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var first = Submissions.Create(TenantA, "1", gender: "female");
        await store.Queue.AddSubmissionsAsync([first], None);
        await store.Queue.ApplyPendingAsync(10, None);
        var v1 = (await store.Feed.GetPatientAsync((await store.Queue.GetSubmissionAsync(first.Id, None))!.PatientId!, None))!;

        time.Advance(TimeSpan.FromSeconds(1));
        var second = Submissions.Create(TenantA, "1", gender: "male");
        await store.Queue.AddSubmissionsAsync([second], None);
        await store.Queue.ApplyPendingAsync(10, None);

        var record = (await store.Queue.GetSubmissionAsync(second.Id, None))!;
        Assert.Equal(SubmissionState.Applied, record.State);
        Assert.Equal(v1.Id, record.PatientId);
        Assert.Equal(2, record.PatientVersion);
        var v2 = (await store.Feed.GetPatientAsync(v1.Id, None))!;
        Assert.Equal(2, v2.Version);
        Assert.Equal(FeedTime.FromDateTimeOffset(Start.AddSeconds(1)), v2.LastUpdated);
        using var json = JsonDocument.Parse(v2.Json);
        Assert.Equal("2", json.RootElement.GetProperty("meta").GetProperty("versionId").GetString());
        Assert.Equal("male", json.RootElement.GetProperty("gender").GetString());
    }

    [Fact]
    public async Task Identical_content_is_unchanged_and_leaves_version_and_lastUpdated_untouched()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new ManualTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var first = Submissions.Create(TenantA, "1");
        await store.Queue.AddSubmissionsAsync([first], None);
        await store.Queue.ApplyPendingAsync(10, None);
        var id = (await store.Queue.GetSubmissionAsync(first.Id, None))!.PatientId!;
        var before = (await store.Feed.GetPatientAsync(id, None))!;

        time.Advance(TimeSpan.FromMinutes(5));
        var retry = Submissions.Create(TenantA, "1");
        await store.Queue.AddSubmissionsAsync([retry], None);
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var record = (await store.Queue.GetSubmissionAsync(retry.Id, None))!;
        Assert.Equal(SubmissionState.Unchanged, record.State);
        Assert.Equal(id, record.PatientId);
        Assert.Equal(1, record.PatientVersion);
        var after = (await store.Feed.GetPatientAsync(id, None))!;
        Assert.Equal(before.LastUpdated, after.LastUpdated);
        Assert.Equal(1, after.Version);
        Assert.Equal(before.Json, after.Json);
    }

    [Fact]
    public async Task An_earlier_accepted_submission_that_arrives_after_a_later_one_was_applied_is_superseded()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var earlier = Submissions.Create(TenantA, "1", gender: "female");
        var later = Submissions.Create(TenantA, "1", gender: "male");

        await db.AcceptLateAsync(earlier, async () =>
        {
            await store.Queue.AddSubmissionsAsync([later], None);
            Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        });
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var earlierRecord = (await store.Queue.GetSubmissionAsync(earlier.Id, None))!;
        var laterRecord = (await store.Queue.GetSubmissionAsync(later.Id, None))!;
        Assert.True(earlierRecord.Sequence < laterRecord.Sequence);
        Assert.Equal(SubmissionState.Applied, laterRecord.State);
        Assert.Equal(SubmissionState.Superseded, earlierRecord.State);
        Assert.Equal(laterRecord.PatientId, earlierRecord.PatientId);
        var patient = (await store.Feed.GetPatientAsync(laterRecord.PatientId!, None))!;
        Assert.Equal(1, patient.Version);
        using var json = JsonDocument.Parse(patient.Json);
        Assert.Equal("male", json.RootElement.GetProperty("gender").GetString());
    }

    [Fact]
    public async Task Identifiers_belonging_to_two_patients_fail_with_a_reason_and_do_not_block_the_queue()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        await store.Queue.AddSubmissionsAsync([Submissions.Create(TenantA, "1"), Submissions.Create(TenantA, "2")], None);
        await store.Queue.ApplyPendingAsync(10, None);

        var both = Submissions.Create(TenantA, "1", extraKeys: [new PatientKey(Submissions.Fnr, "2")]);
        var next = Submissions.Create(TenantA, "3");
        await store.Queue.AddSubmissionsAsync([both, next], None);
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var failed = (await store.Queue.GetSubmissionAsync(both.Id, None))!;
        Assert.Equal(SubmissionState.Failed, failed.State);
        Assert.Contains("more than one", failed.Reason);
        Assert.Null(failed.PatientId);
        Assert.NotNull(failed.ProcessedAt);
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(next.Id, None))!.State);
        Assert.Equal(3, (await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 50), None)).Count);
    }

    [Fact]
    public async Task A_second_identifier_links_to_the_same_patient_and_replaces_the_stored_keys()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var first = Submissions.Create(TenantA, "1", extraKeys: [new PatientKey(Submissions.DNumber, "41010112345")]);
        await store.Queue.AddSubmissionsAsync([first], None);
        await store.Queue.ApplyPendingAsync(10, None);

        // Found by the D-number alone; afterwards the patient is known by fnr 9 and the D-number no longer.
        var byDNumber = Submissions.FromContent(TenantA,
            """{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"9"},{"system":"urn:oid:2.16.578.1.12.4.1.4.2","value":"41010112345"}]}""",
            [new PatientKey(Submissions.Fnr, "9"), new PatientKey(Submissions.DNumber, "41010112345")]);
        await store.Queue.AddSubmissionsAsync([byDNumber], None);
        await store.Queue.ApplyPendingAsync(10, None);
        var onlyNine = Submissions.Create(TenantA, "9", gender: "other");
        var oldFnr = Submissions.Create(TenantA, "1", gender: "other");
        await store.Queue.AddSubmissionsAsync([onlyNine, oldFnr], None);
        await store.Queue.ApplyPendingAsync(10, None);

        var id = (await store.Queue.GetSubmissionAsync(first.Id, None))!.PatientId;
        Assert.Equal(id, (await store.Queue.GetSubmissionAsync(byDNumber.Id, None))!.PatientId);
        Assert.Equal(id, (await store.Queue.GetSubmissionAsync(onlyNine.Id, None))!.PatientId);
        Assert.Equal(3, (await store.Queue.GetSubmissionAsync(onlyNine.Id, None))!.PatientVersion);
        var other = (await store.Queue.GetSubmissionAsync(oldFnr.Id, None))!;
        Assert.Equal(SubmissionState.Applied, other.State);
        Assert.NotEqual(id, other.PatientId);
        Assert.Equal(1, other.PatientVersion);
    }

    [Fact]
    public async Task Submissions_for_one_patient_in_one_batch_see_each_other_in_acceptance_order()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var dNumber = new PatientKey(Submissions.DNumber, "41010112345");
        var batch = new[]
        {
            Submissions.Create(TenantA, "1", gender: "female"),                       // new patient P, v1
            Submissions.Create(TenantA, "1", gender: "male"),                         // P v2
            Submissions.Create(TenantA, "1", gender: "male"),                         // unchanged
            Submissions.Create(TenantA, "1", gender: "other", extraKeys: [dNumber]),  // P v3, known by 1 and the D-number
            Submissions.Create(TenantA, "2", gender: "unknown", extraKeys: [dNumber]),// P v4 by the D-number, now known by 2 and it
            Submissions.Create(TenantA, "1", gender: "female"),                       // 1 is free again: new patient Q
        };
        await store.Queue.AddSubmissionsAsync(batch, None);
        Assert.Equal(6, (await store.Queue.ApplyPendingAsync(50, None)).Count);

        var records = new List<SubmissionRecord>();
        foreach (var s in batch)
        {
            records.Add((await store.Queue.GetSubmissionAsync(s.Id, None))!);
        }

        var p = records[0].PatientId;
        Assert.Equal(
            [(SubmissionState.Applied, p, 1), (SubmissionState.Applied, p, 2), (SubmissionState.Unchanged, p, 2),
             (SubmissionState.Applied, p, 3), (SubmissionState.Applied, p, 4)],
            records.Take(5).Select(r => (r.State, r.PatientId, r.PatientVersion ?? 0)));
        Assert.Equal(SubmissionState.Applied, records[5].State);
        Assert.NotEqual(p, records[5].PatientId);
        Assert.Equal(1, records[5].PatientVersion);

        var patient = (await store.Feed.GetPatientAsync(p!, None))!;
        Assert.Equal(4, patient.Version);
        using (var json = JsonDocument.Parse(patient.Json))
        {
            Assert.Equal("unknown", json.RootElement.GetProperty("gender").GetString());
            Assert.Equal("4", json.RootElement.GetProperty("meta").GetProperty("versionId").GetString());
        }

        // What the batch left behind is what the next batch matches against.
        var next = new[]
        {
            Submissions.Create(TenantA, "2", gender: "unknown", extraKeys: [dNumber]),
            Submissions.Create(TenantA, "1", gender: "male"),
        };
        await store.Queue.AddSubmissionsAsync(next, None);
        await store.Queue.ApplyPendingAsync(50, None);
        Assert.Equal((SubmissionState.Unchanged, p), await StateAsync(next[0]));
        Assert.Equal((SubmissionState.Applied, records[5].PatientId), await StateAsync(next[1]));
        var feed = await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 50), None);
        Assert.Equal(2, feed.Count);
        Assert.True(feed[0].LastUpdated < feed[1].LastUpdated);

        async Task<(SubmissionState, string?)> StateAsync(NewSubmission s)
        {
            var r = (await store.Queue.GetSubmissionAsync(s.Id, None))!;
            return (r.State, r.PatientId);
        }
    }

    [Fact]
    public async Task Matching_is_per_tenant_so_one_identifier_in_two_tenants_makes_two_patients()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var a = Submissions.Create(TenantA, "1");
        var b = Submissions.Create(TenantB, "1");
        await store.Queue.AddSubmissionsAsync([a, b], None);
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);

        var ra = (await store.Queue.GetSubmissionAsync(a.Id, None))!;
        var rb = (await store.Queue.GetSubmissionAsync(b.Id, None))!;
        Assert.Equal(SubmissionState.Applied, ra.State);
        Assert.Equal(SubmissionState.Applied, rb.State);
        Assert.NotEqual(ra.PatientId, rb.PatientId);
        Assert.Equal(1, rb.PatientVersion);
        Assert.Equal(TenantB, (await store.Feed.GetPatientAsync(rb.PatientId!, None))!.Tenant);
        var onlyB = await store.Feed.SearchAsync(new PatientPageQuery(TenantB, false, null, null, null, 50), None);
        Assert.Equal(rb.PatientId, Assert.Single(onlyB).Id);
    }

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

        var all = await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 50), None);
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
                        var page = await store.Feed.SearchAsync(new PatientPageQuery(tenant, descending, lower, upper, after, 4), None);
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
            var feed = await store.Feed.SearchAsync(new PatientPageQuery(null, false, previous + 1, null, null, 50), None);
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
                var page = await reader.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, after, 7), None);
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

public sealed class SqlitePitStoreContractTests : PitStoreContractTests
{
    private protected override Task<StoreTestDatabase> CreateDatabaseAsync() => Task.FromResult<StoreTestDatabase>(new SqliteTestDatabase());
}

public sealed class PostgresPitStoreContractTests(PostgresServer server) : PitStoreContractTests, IClassFixture<PostgresServer>
{
    private protected override async Task<StoreTestDatabase> CreateDatabaseAsync() => await PostgresTestDatabase.CreateAsync(server);
}
