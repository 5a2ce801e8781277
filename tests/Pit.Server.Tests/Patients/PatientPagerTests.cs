using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Auth;
using Pit.Server.Feed;
using Pit.Server.Patients;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Tests.Storage;
using Pit.Server.Upsert;
using Task = System.Threading.Tasks.Task;

namespace Pit.Server.Tests.Patients;

/// <summary>
/// The search pager (<see cref="PatientPager"/>) over a real store of each engine: page boundaries by count and by
/// bytes, continuation with the cursor it seals, the links it makes, and the warnings and refusals of a search.
/// </summary>
public abstract class PatientPagerTests
{
    private const string TenantA = "999999999";
    private const string TenantB = "888888888";
    private const string Root = "https://pit.example/v1/Patient";
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    private static readonly PitCaller ReaderA = new("client-a", TenantA, null, ReadsAllOrganisations: false);
    private static readonly PitCaller ReaderB = new("client-b", TenantB, null, ReadsAllOrganisations: false);
    private static readonly PitCaller ReaderOfAll = new("client-all", TenantB, null, ReadsAllOrganisations: true);
    private static readonly PreferHeader NoPreferences = new(false, null, null);

    private readonly FakeTimeProvider _time = new(Start);
    private readonly FeedChangeHub _hub = new();

    private protected abstract Task<StoreTestDatabase> CreateDatabaseAsync();

    [Fact]
    public async Task Pages_end_at_the_count_and_next_links_continue_after_the_last_row_without_gap_or_repeat()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var stored = await StoreAsync(store, TenantA, 5);
        var pager = Pager(store);

        var pages = await AllPagesAsync(pager, ReaderA, new PatientSearchQuery { Count = 2 });

        Assert.Equal([2, 2, 1], pages.Select(p => p.Rows.Count));
        Assert.Equal(stored, pages.SelectMany(p => p.Rows).Select(r => r.Id));
        Assert.All(pages.SkipLast(1), p => Assert.NotNull(p.Next));
        Assert.Null(pages[^1].Next);
    }

    [Fact]
    public async Task A_page_ends_at_the_byte_cap_before_its_count_and_the_next_link_carries_on_with_the_row_that_did_not_fit()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var stored = await StoreAsync(store, TenantA, 5);
        var all = (await store.Feed.SearchAsync(new PatientPageQuery(TenantA, false, null, null, null, 10), CancellationToken.None)).Rows;
        var cap = all[0].Json.Length + all[1].Json.Length;
        var pager = Pager(store, maxPageBytes: cap);

        var pages = await AllPagesAsync(pager, ReaderA, new PatientSearchQuery { Count = 10 });

        Assert.Equal([2, 2, 1], pages.Select(p => p.Rows.Count));
        Assert.All(pages, p => Assert.True(p.Rows.Sum(r => r.Json.Length) <= cap));
        Assert.Equal(stored, pages.SelectMany(p => p.Rows).Select(r => r.Id));
    }

    [Fact]
    public async Task A_patient_larger_than_the_byte_cap_is_served_alone_on_its_page()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var small = await StoreAsync(store, TenantA, 1);
        var big = await StoreOneAsync(store, Submissions.Create(TenantA, "20000000001", family: new string('x', 4_000)));
        var after = await StoreAsync(store, TenantA, 1, firstFnr: 30);
        var pager = Pager(store, maxPageBytes: 2_000);

        var pages = await AllPagesAsync(pager, ReaderA, new PatientSearchQuery { Count = 10 });

        Assert.Equal(3, pages.Count);
        Assert.Equal(small, pages[0].Rows.Select(r => r.Id));
        Assert.Equal(big, Assert.Single(pages[1].Rows).Id);
        Assert.Equal(after, pages[2].Rows.Select(r => r.Id));
    }

    [Fact]
    public async Task A_cursor_keeps_the_sort_and_bounds_of_the_search_it_continues()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        await StoreAsync(store, TenantA, 2);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var from = FeedTime.FromDateTimeOffset(_time.GetUtcNow());
        var inRange = await StoreAsync(store, TenantA, 5, firstFnr: 10);
        var pager = Pager(store);

        var pages = await AllPagesAsync(pager, ReaderA, new PatientSearchQuery { Count = 2, Descending = true, From = from });

        Assert.Equal(Enumerable.Reverse(inRange), pages.SelectMany(p => p.Rows).Select(r => r.Id));
    }

    [Fact]
    public async Task A_count_given_with_a_cursor_overrides_the_cursors_page_size_and_is_named_in_the_self_link()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var stored = await StoreAsync(store, TenantA, 6);
        var pager = Pager(store);

        var first = await PageAsync(pager, ReaderA, new PatientSearchQuery { Count = 1 });
        var cursor = CursorOf(first.Next!);
        var second = await PageAsync(pager, ReaderA, new PatientSearchQuery { Cursor = cursor, Count = 3 });
        var third = await PageAsync(pager, ReaderA, new PatientSearchQuery { Cursor = CursorOf(second.Next!) });

        Assert.Equal(stored[1..4], second.Rows.Select(r => r.Id));
        Assert.Equal(QueryHelpers.AddQueryString(QueryHelpers.AddQueryString(Root, "cursor", cursor), "_count", "3"), second.Self);
        // The next link asks for the page size of the page it follows.
        Assert.Equal(stored[4..6], third.Rows.Select(r => r.Id));
        Assert.Equal(QueryHelpers.AddQueryString(Root, "cursor", CursorOf(second.Next!)), third.Self);
    }

    [Fact]
    public async Task The_self_link_of_a_fresh_search_repeats_its_filters_with_the_count_and_sort_that_applied()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var pager = Pager(store);
        var search = new PatientSearchQuery { LastUpdated = ["ge2026-01-01T00:00Z", "lt2027-01-01T00:00Z"], Descending = true };

        var page = await PageAsync(pager, ReaderA, search);

        Assert.Equal(Root + "?_lastUpdated=ge2026-01-01T00%3A00Z&_lastUpdated=lt2027-01-01T00%3A00Z&_count=20&_sort=-_lastUpdated", page.Self);
    }

    [Fact]
    public async Task An_empty_feed_gives_an_empty_page_without_a_next_link_or_warnings()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);

        var page = await PageAsync(Pager(store), ReaderA, new PatientSearchQuery());

        Assert.Empty(page.Rows);
        Assert.Null(page.Next);
        Assert.Empty(page.Warnings);
        Assert.Null(page.Waited);
    }

    [Fact]
    public async Task A_page_holds_only_the_callers_organisation_unless_the_caller_reads_all_organisations()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var ofA = await StoreAsync(store, TenantA, 2);
        var ofB = await StoreAsync(store, TenantB, 2, firstFnr: 10);
        var pager = Pager(store);

        Assert.Equal(ofA, (await PageAsync(pager, ReaderA, new PatientSearchQuery())).Rows.Select(r => r.Id));
        Assert.Equal(ofB, (await PageAsync(pager, ReaderB, new PatientSearchQuery())).Rows.Select(r => r.Id));
        Assert.Equal([.. ofA, .. ofB], (await PageAsync(pager, ReaderOfAll, new PatientSearchQuery())).Rows.Select(r => r.Id));
    }

    [Fact]
    public async Task A_cursor_made_for_another_organisation_is_refused_naming_the_cursor()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        await StoreAsync(store, TenantA, 3);
        var pager = Pager(store);
        var first = await PageAsync(pager, ReaderA, new PatientSearchQuery { Count = 1 });

        var result = await pager.PageAsync(ReaderB, new PatientSearchQuery { Cursor = CursorOf(first.Next!) }, NoPreferences, Root, CancellationToken.None);

        Assert.Null(result.Page);
        var issue = Assert.Single(result.Refusal!.Issue);
        Assert.Equal(OperationOutcome.IssueType.Invalid, issue.Code);
        Assert.Equal(["cursor"], issue.Expression);
    }

    [Fact]
    public async Task A_tampered_cursor_is_refused()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        await StoreAsync(store, TenantA, 3);
        var pager = Pager(store);
        var cursor = CursorOf((await PageAsync(pager, ReaderA, new PatientSearchQuery { Count = 1 })).Next!);
        var bytes = WebEncoders.Base64UrlDecode(cursor);
        bytes[^1] ^= 1;

        var result = await pager.PageAsync(
            ReaderA, new PatientSearchQuery { Cursor = WebEncoders.Base64UrlEncode(bytes) }, NoPreferences, Root, CancellationToken.None);

        Assert.Null(result.Page);
        Assert.Equal(["cursor"], Assert.Single(result.Refusal!.Issue).Expression);
    }

    [Fact]
    public async Task Lenient_handling_answers_with_warnings_for_ignored_parameters_and_a_malformed_wait()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var stored = await StoreAsync(store, TenantA, 1);

        var result = await Pager(store).SearchAsync(
            ReaderA, Query("family=Nordmann&_count=5&gender=female"), "handling=lenient, wait=soon", Root, CancellationToken.None);

        var page = result.Page!;
        Assert.Null(result.Refusal);
        Assert.Equal(stored, page.Rows.Select(r => r.Id));
        Assert.Equal(2, page.Warnings.Count);
        Assert.All(page.Warnings, w => Assert.Equal(OperationOutcome.IssueSeverity.Warning, w.Severity));
        Assert.Equal(["family", "gender"], page.Warnings[0].Expression);
        Assert.Equal(OperationOutcome.IssueType.NotSupported, page.Warnings[0].Code);
        Assert.Equal(["Prefer"], page.Warnings[1].Expression);
        Assert.Null(page.Waited);
    }

    [Fact]
    public async Task Strict_handling_refuses_a_malformed_wait_together_with_every_parameter_problem()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);

        var result = await Pager(store).SearchAsync(ReaderA, Query("family=Nordmann&_count=0"), "wait=soon", Root, CancellationToken.None);

        Assert.Null(result.Page);
        Assert.Equal([["family"], ["_count"], ["Prefer"]], result.Refusal!.Issue.Select(i => i.Expression.ToList()));
        Assert.All(result.Refusal.Issue, i => Assert.Equal(OperationOutcome.IssueSeverity.Error, i.Severity));
        Assert.Equal(OperationOutcome.IssueType.NotSupported, result.Refusal.Issue[0].Code);
    }

    [Fact]
    public async Task An_empty_page_held_by_prefer_wait_answers_with_the_rows_once_the_feed_changes_and_reports_the_wait()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync(_time);
        var pager = Pager(store);

        var held = pager.SearchAsync(ReaderA, Query("_count=5"), "wait=7", Root, CancellationToken.None);
        var stored = await StoreAsync(store, TenantA, 1);
        _hub.Wake([TenantA]);
        var result = await held.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(stored, result.Page!.Rows.Select(r => r.Id));
        Assert.Equal(TimeSpan.FromSeconds(7), result.Page.Waited);
    }

    private PatientPager Pager(StoreUnderTest store, long maxPageBytes = SearchOptions.DefaultMaxPageBytes)
    {
        var feed = Options.Create(new FeedOptions());
        var lifetime = new ApplicationLifetime(NullLogger<ApplicationLifetime>.Instance);
        var secrets = new SharedSecrets(store.Secrets, Options.Create(new SharedSecretOptions()));
        return new PatientPager(store.Feed, new SearchCursorProtector(secrets), new FeedLongPoll(_hub, new FeedWaiterLimits(feed), _time, lifetime),
            feed, Options.Create(new SearchOptions { MaxPageBytes = maxPageBytes }));
    }

    /// <summary>Stores and applies <paramref name="count"/> Patients one after the other; their ids in feed order.</summary>
    private async Task<string[]> StoreAsync(StoreUnderTest store, string tenant, int count, int firstFnr = 0)
    {
        var ids = new List<string>();
        for (var i = 0; i < count; i++)
        {
            ids.Add(await StoreOneAsync(store, Submissions.Create(tenant, $"{tenant}{firstFnr + i:D2}", family: $"Family{i}")));
        }

        return [.. ids];
    }

    private async Task<string> StoreOneAsync(StoreUnderTest store, NewSubmission submission)
    {
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await store.Queue.AddSubmissionsAsync([submission], CancellationToken.None);
        Assert.Equal(1, (await store.Queue.ApplyPendingAsync(1, CancellationToken.None)).Count);
        return (await store.Queue.GetSubmissionAsync(submission.Id, CancellationToken.None))!.PatientId!;
    }

    private static async Task<PatientSearchPage> PageAsync(PatientPager pager, PitCaller caller, PatientSearchQuery search)
    {
        var result = await pager.PageAsync(caller, search, NoPreferences, Root, CancellationToken.None);
        Assert.Null(result.Refusal);
        return result.Page!;
    }

    /// <summary>Follows next links from <paramref name="search"/> to the last page.</summary>
    private static async Task<List<PatientSearchPage>> AllPagesAsync(PatientPager pager, PitCaller caller, PatientSearchQuery search)
    {
        var pages = new List<PatientSearchPage> { await PageAsync(pager, caller, search) };
        while (pages[^1].Next is { } next)
        {
            Assert.True(pages.Count < 20, "the next links never end");
            pages.Add(await PageAsync(pager, caller, new PatientSearchQuery { Cursor = CursorOf(next) }));
        }

        return pages;
    }

    private static string CursorOf(string link)
    {
        Assert.StartsWith(Root + "?cursor=", link, StringComparison.Ordinal);
        return QueryHelpers.ParseQuery(new Uri(link).Query)["cursor"].Single()!;
    }

    private static QueryCollection Query(string text) => new(QueryHelpers.ParseQuery(text));
}

public sealed class SqlitePatientPagerTests : PatientPagerTests
{
    private protected override Task<StoreTestDatabase> CreateDatabaseAsync() => Task.FromResult<StoreTestDatabase>(new SqliteTestDatabase());
}

public sealed class PostgresPatientPagerTests(PostgresServer server) : PatientPagerTests, IClassFixture<PostgresServer>
{
    private protected override async Task<StoreTestDatabase> CreateDatabaseAsync() => await PostgresTestDatabase.CreateAsync(server);
}
