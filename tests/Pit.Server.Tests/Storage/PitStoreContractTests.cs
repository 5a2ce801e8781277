using System.Collections.Concurrent;
using System.Text.Json;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// The storage contract: every engine runs these same tests through the store interfaces
/// (<see cref="SqlitePitStoreContractTests"/>, <see cref="PostgresPitStoreContractTests"/>).
/// </summary>
public abstract partial class PitStoreContractTests
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
        Assert.Equal(3, (await store.Feed.SearchAsync(new PatientPageQuery(null, false, null, null, null, 50), None)).Rows.Count);
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
        var feed = (await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 50), None)).Rows;
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
        var onlyB = (await store.Feed.SearchAsync(new PatientPageQuery(TenantB, false, null, null, null, 50), None)).Rows;
        Assert.Equal(rb.PatientId, Assert.Single(onlyB).Id);
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
