using System.Globalization;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Pit.Server.Auth;
using Pit.Server.Feed;
using Pit.Server.Fhir;
using Pit.Server.Storage;

namespace Pit.Server.Patients;

/// <summary>One page of a search, ready to be written as a searchset Bundle.</summary>
/// <param name="Rows">The page's current Patient versions, in the search's order.</param>
/// <param name="Self">The self link: the search as asked (filters, or the cursor it continued).</param>
/// <param name="Next">The next link, a sealed cursor after the last row; null on the last page.</param>
/// <param name="Warnings">What was ignored under <c>Prefer: handling=lenient</c>, for the Bundle's outcome entry.</param>
/// <param name="Waited">The wait applied (<c>Preference-Applied</c>) when the search was held for news; otherwise null.</param>
internal sealed record PatientSearchPage(
    IReadOnlyList<PatientRecord> Rows, string Self, string? Next, IReadOnlyList<OperationOutcome.IssueComponent> Warnings, TimeSpan? Waited);

/// <summary>A search answered with a <see cref="Page"/>, or refused (400) with the <see cref="Refusal"/> outcome.</summary>
internal sealed record PatientSearchResult(PatientSearchPage? Page, OperationOutcome? Refusal)
{
    public static PatientSearchResult Refused(OperationOutcome outcome) => new(null, outcome);
}

/// <summary>
/// Turns a parsed search (fresh, or continued with a cursor) into one page of the caller's feed: the keyset query
/// with its count and byte cap, the long-poll wait, the cursor sealed after the last row, the self link, and the
/// warnings for what was ignored. The search endpoint only resolves the caller, calls this and writes the Bundle.
/// </summary>
internal sealed class PatientPager(
    IPatientFeedStore store, SearchCursorProtector protector, FeedLongPoll longPoll, IOptions<FeedOptions> feedOptions, IOptions<SearchOptions> searchOptions)
{
    /// <summary>
    /// Parses the search parameters and <c>Prefer</c> headers, then pages. Under strict handling (the default) any
    /// problem refuses the search with every problem listed; lenient handling ignores what it can and warns instead.
    /// </summary>
    public async Task<PatientSearchResult> SearchAsync(
        PitCaller caller, IQueryCollection query, StringValues preferHeaders, string root, CancellationToken cancellationToken)
    {
        var prefer = PreferHeader.Parse(preferHeaders);
        var errors = new List<SearchParameterError>();
        var search = PatientSearchQuery.Parse(query, prefer.Lenient, errors);
        if (prefer.MalformedWait is not null && !prefer.Lenient)
        {
            errors.Add(new SearchParameterError(MalformedWait(prefer.MalformedWait), "Prefer"));
        }

        if (search is null || errors.Count > 0)
        {
            var outcome = new OperationOutcome();
            foreach (var e in errors)
            {
                outcome.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error,
                    e.NotSupported ? OperationOutcome.IssueType.NotSupported : OperationOutcome.IssueType.Invalid, e.Message, e.Parameter));
            }

            return PatientSearchResult.Refused(outcome);
        }

        return await PageAsync(caller, search, prefer, root, cancellationToken);
    }

    /// <summary>
    /// One page of <paramref name="search"/> for <paramref name="caller"/>. Links are made under
    /// <paramref name="root"/> (the public URL of <c>/v1/Patient</c>). A cursor that does not open, or was made for
    /// another scope, refuses the search.
    /// </summary>
    public async Task<PatientSearchResult> PageAsync(
        PitCaller caller, PatientSearchQuery search, PreferHeader prefer, string root, CancellationToken cancellationToken)
    {
        var scope = caller.ReadScope ?? SearchCursor.AllOrganisations;
        var maxBytes = searchOptions.Value.MaxPageBytes;
        PatientPageQuery page;
        string self;
        if (search.Cursor is { } cursorText)
        {
            var cursor = await protector.UnprotectAsync(cursorText);
            if (cursor is null || cursor.Scope != scope)
            {
                return PatientSearchResult.Refused(Outcomes.Error(OperationOutcome.IssueType.Invalid,
                    "The cursor is not valid here. Use the next link of a Bundle exactly as this server returned it, with the same credentials.", "cursor"));
            }

            var count = search.Count ?? cursor.Count;
            page = new PatientPageQuery(caller.ReadScope, cursor.Descending, cursor.From, cursor.To, cursor.After, count, maxBytes);
            self = QueryHelpers.AddQueryString(root, "cursor", cursorText);
            if (search.Count is not null)
            {
                self = QueryHelpers.AddQueryString(self, "_count", count.ToString(CultureInfo.InvariantCulture));
            }
        }
        else
        {
            var count = search.Count ?? PatientSearchQuery.DefaultCount;
            page = new PatientPageQuery(caller.ReadScope, search.Descending, search.From, search.To, null, count, maxBytes);
            var parameters = search.LastUpdated.Select(v => new KeyValuePair<string, string?>("_lastUpdated", v)).ToList();
            parameters.Add(new("_count", count.ToString(CultureInfo.InvariantCulture)));
            parameters.Add(new("_sort", search.Descending ? "-_lastUpdated" : "_lastUpdated"));
            self = QueryHelpers.AddQueryString(root, parameters);
        }

        // Prefer: wait=N holds a search whose page is empty until the feed changes (Feed/FeedLongPoll.cs); any search, cursor or not.
        var wait = prefer.Wait(feedOptions.Value.MaxWait);
        var polled = await longPoll.SearchAsync(caller, wait, ct => store.SearchAsync(page, ct), cancellationToken);

        // A page ends at _count rows or at the byte cap, whichever comes first; the next link continues after its last row
        // and asks for the same _count.
        var rows = polled.Page.Rows;
        string? next = null;
        if (polled.Page.More)
        {
            var last = rows[^1];
            var cursor = new SearchCursor(page.Descending, page.Limit, page.From, page.To, new PagePosition(last.LastUpdated, last.Id), scope);
            next = QueryHelpers.AddQueryString(root, "cursor", await protector.ProtectAsync(cursor));
        }

        return new PatientSearchResult(new PatientSearchPage(rows, self, next, Warnings(search, prefer), polled.Waited ? wait : null), null);
    }

    private static List<OperationOutcome.IssueComponent> Warnings(PatientSearchQuery search, PreferHeader prefer)
    {
        var warnings = new List<OperationOutcome.IssueComponent>();
        if (search.Ignored.Count > 0)
        {
            warnings.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Warning, OperationOutcome.IssueType.NotSupported,
                $"Ignored unknown search parameter(s): {string.Join(", ", search.Ignored)}.", [.. search.Ignored]));
        }

        if (prefer.MalformedWait is not null)
        {
            warnings.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Warning, OperationOutcome.IssueType.Invalid,
                "Ignored: " + MalformedWait(prefer.MalformedWait), "Prefer"));
        }

        return warnings;
    }

    private static string MalformedWait(string value) =>
        $"Prefer wait must be a whole number of seconds (e.g. wait=20; at most the server's maximum, longer is shortened); got '{value}'.";
}
