using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Audit;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>Retention and export, the same on every engine (time from a <see cref="FakeTimeProvider"/>).</summary>
public abstract class RetentionContractTests
{
    private const string TenantA = "999999999";
    private const string TenantB = "888888888";
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    private protected abstract Task<StoreTestDatabase> CreateDatabaseAsync();

    private static CancellationToken None => CancellationToken.None;

    [Fact]
    public async Task Audit_entries_older_than_the_retention_are_removed_and_newer_ones_are_kept()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new FakeTimeProvider(Now);
        var store = await db.OpenStoreAsync(time);
        var retention = Retention(store, time, auditDays: 10, submissionDays: 30);
        await retention.RunOnceAsync(None);
        var longAgo = Entry(Now.AddDays(-20), TenantA);
        var earlierToday = Entry(Now.AddHours(-1), TenantA);
        var laterToday = Entry(Now.AddHours(2), TenantB);
        var tomorrow = Entry(Now.AddDays(1), TenantB);
        await store.Audit.AppendAuditAsync([longAgo, earlierToday, laterToday, tomorrow], None);

        // Ten days and thirteen hours on, everything before Now + 13 h is past the retention: all of Now's day.
        time.Advance(TimeSpan.FromDays(10) + TimeSpan.FromHours(13));
        await retention.RunOnceAsync(None);

        Assert.Equal([tomorrow], await store.Audit.ReadAuditAsync(null, 10, None));
        Assert.Equal([tomorrow], await ExportAsync(store, long.MinValue, long.MaxValue, null));
        await retention.RunOnceAsync(None);
        Assert.Equal([tomorrow], await store.Audit.ReadAuditAsync(null, 10, None));
    }

    [Fact]
    public async Task Audit_rows_are_removed_in_batches_until_none_is_left_past_the_retention()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new FakeTimeProvider(Now);
        var store = await db.OpenStoreAsync(time);
        var old = Enumerable.Range(0, StoreRetention.BatchRows + 7).Select(i => Entry(Now.AddDays(-400).AddSeconds(i), TenantA)).ToList();
        await store.Audit.AppendAuditAsync(old, None);
        var recent = Entry(Now.AddDays(-1), TenantA);
        await store.Audit.AppendAuditAsync([recent], None);

        var run = await Retention(store, time, auditDays: 365, submissionDays: 30).RunOnceAsync(None);

        Assert.Equal(StoreRetention.BatchRows + 7, run.AuditRowsDeleted);
        Assert.Equal([recent], await store.Audit.ReadAuditAsync(null, 10, None));
    }

    [Fact]
    public async Task Processed_submissions_past_their_retention_are_deleted_while_queued_and_recent_ones_stay()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new FakeTimeProvider(Now);
        var store = await db.OpenStoreAsync(time);
        var old = new[] { Submissions.Create(TenantA, "1"), Submissions.Create(TenantB, "2") };
        await store.Queue.AddSubmissionsAsync(old, None);
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        time.Advance(TimeSpan.FromDays(25));
        var recent = Submissions.Create(TenantA, "3");
        await store.Queue.AddSubmissionsAsync([recent], None);
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        var queued = Submissions.Create(TenantA, "4", acceptedAt: FeedTime.FromDateTimeOffset(Now));
        await store.Queue.AddSubmissionsAsync([queued], None);
        time.Advance(TimeSpan.FromDays(6));

        var run = await Retention(store, time, auditDays: 365, submissionDays: 30).RunOnceAsync(None);

        Assert.Equal(2, run.SubmissionsDeleted);
        Assert.Null(await store.Queue.GetSubmissionAsync(old[0].Id, None));
        Assert.Null(await store.Queue.GetSubmissionAsync(old[1].Id, None));
        Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(recent.Id, None))!.State);
        Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(queued.Id, None))!.State);
        Assert.NotNull(await store.Feed.GetPatientAsync((await store.Queue.GetSubmissionAsync(recent.Id, None))!.PatientId!, None));
    }

    [Fact]
    public async Task Export_streams_the_entries_of_the_range_oldest_first_optionally_for_one_organisation()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new FakeTimeProvider(Now);
        var store = await db.OpenStoreAsync(time);
        var entries = Enumerable.Range(0, 6).Select(i => Entry(Now.AddHours(i * 10), i % 2 == 0 ? TenantA : TenantB)).ToList();
        await store.Audit.AppendAuditAsync([.. entries.AsEnumerable().Reverse()], None);

        var from = FeedTime.FromDateTimeOffset(Now.AddHours(10));
        var to = FeedTime.FromDateTimeOffset(Now.AddHours(40));
        Assert.Equal(entries[1..4], await ExportAsync(store, from, to, null));
        Assert.Equal([entries[2]], await ExportAsync(store, from, to, TenantA));
        Assert.Empty(await ExportAsync(store, from, to, "000000000"));
    }

    internal static StoreRetention Retention(StoreUnderTest store, TimeProvider time, int auditDays, int submissionDays) => new(
        store.Retention, time, Options.Create(new AuditOptions { RetentionDays = auditDays }),
        Options.Create(new StorageOptions { SubmissionRetentionDays = submissionDays }), NullLogger<StoreRetention>.Instance);

    internal static AuditEntry Entry(DateTimeOffset at, string organisation) =>
        new(FeedTime.FromDateTimeOffset(at), "read", "client-1", organisation, null, Guid.NewGuid(), "p1", 200, "ok");

    private static async Task<List<AuditEntry>> ExportAsync(StoreUnderTest store, long from, long to, string? organisation)
    {
        var result = new List<AuditEntry>();
        await foreach (var entry in store.Export.ExportAuditAsync(from, to, organisation, None))
        {
            result.Add(entry);
        }

        return result;
    }
}

public sealed class SqliteRetentionContractTests : RetentionContractTests
{
    private protected override Task<StoreTestDatabase> CreateDatabaseAsync() => Task.FromResult<StoreTestDatabase>(new SqliteTestDatabase());
}

public sealed class PostgresRetentionContractTests(PostgresServer server) : RetentionContractTests, IClassFixture<PostgresServer>
{
    private protected override async Task<StoreTestDatabase> CreateDatabaseAsync() => await PostgresTestDatabase.CreateAsync(server);
}
