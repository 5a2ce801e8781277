namespace Pit.Client;

/// <summary>Sort order of a Patient search.</summary>
public enum PatientSort
{
    /// <summary><c>_sort=_lastUpdated</c>: oldest change first (the change-feed order; the server's default).</summary>
    LastUpdatedAscending,

    /// <summary><c>_sort=-_lastUpdated</c>: newest change first.</summary>
    LastUpdatedDescending,
}

/// <summary>The parameters of <c>GET /v1/Patient</c>.</summary>
public sealed class PatientSearch
{
    /// <summary>
    /// <c>_lastUpdated</c> filters, each with its prefix, for example <c>ge2026-01-01T12:00Z</c> or
    /// <c>gt2026-11-25T10:15:30.123456Z</c>; at most two to form a range.
    /// </summary>
    public IList<string> LastUpdated { get; } = [];

    /// <summary><c>_count</c>: page size 1–50; the server's default (20) when null.</summary>
    public int? Count { get; set; }

    /// <summary><c>_sort</c>; the server's default (ascending) when null.</summary>
    public PatientSort? Sort { get; set; }

    /// <summary>
    /// Long polling: sent as <c>Prefer: wait=N</c> (whole seconds, at least 1). When a page would be empty the server
    /// holds the request until a matching Patient becomes visible or the wait passes (it may shorten the wait to its
    /// maximum, 30 s by default). Null: answered at once.
    /// </summary>
    public TimeSpan? Wait { get; set; }

    /// <summary>The <c>Prefer</c> header value for <see cref="Wait"/>, or null.</summary>
    internal string? PreferHeader => Wait is { } wait
        ? "wait=" + Math.Max(1, (long)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture)
        : null;

    /// <summary>The same page size and wait, ascending, for what came after <paramref name="lastUpdated"/>.</summary>
    internal PatientSearch After(string lastUpdated)
    {
        var next = new PatientSearch { Count = Count, Sort = PatientSort.LastUpdatedAscending, Wait = Wait };
        next.LastUpdated.Add("gt" + lastUpdated);
        return next;
    }

    /// <summary>The query string for these parameters, without the leading <c>?</c>.</summary>
    public string ToQueryString()
    {
        var parts = new List<string>();
        foreach (var filter in LastUpdated)
        {
            parts.Add("_lastUpdated=" + Uri.EscapeDataString(filter));
        }

        if (Count is { } count)
        {
            parts.Add("_count=" + count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (Sort is { } sort)
        {
            parts.Add("_sort=" + (sort == PatientSort.LastUpdatedDescending ? "-_lastUpdated" : "_lastUpdated"));
        }

        return string.Join('&', parts);
    }
}
