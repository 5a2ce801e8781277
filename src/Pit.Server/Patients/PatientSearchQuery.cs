using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Primitives;

namespace Pit.Server.Patients;

/// <summary>
/// The search parameters of <c>GET /v1/Patient</c>, parsed once into a typed model before any query is built.
/// Either a fresh search (filters and sort) or a continuation (<see cref="Cursor"/>, still opaque here).
/// </summary>
internal sealed partial record PatientSearchQuery
{
    public const int DefaultCount = 20;
    public const int MaxCount = 50;

    /// <summary>Stamps are microseconds: a value with six or more fractional digits is an exact copy of one.</summary>
    private const long StampPrecisionNanos = 1_000;

    private static readonly HashSet<string> Known = ["_lastUpdated", "_count", "_sort", "cursor", "_format"];

    /// <summary>Inclusive lower bound, microseconds since the epoch.</summary>
    public long? From { get; init; }

    /// <summary>Exclusive upper bound, microseconds since the epoch.</summary>
    public long? To { get; init; }

    /// <summary>The <c>_lastUpdated</c> values as given, for the self link.</summary>
    public IReadOnlyList<string> LastUpdated { get; init; } = [];

    /// <summary>Explicit <c>_count</c>, if any.</summary>
    public int? Count { get; init; }

    /// <summary>Newest first.</summary>
    public bool Descending { get; init; }

    /// <summary>The raw cursor, when continuing.</summary>
    public string? Cursor { get; init; }

    /// <summary>Parameters ignored under <c>Prefer: handling=lenient</c>.</summary>
    public IReadOnlyList<string> Ignored { get; init; } = [];

    /// <summary>Parses; on failure returns null and fills <paramref name="errors"/>.</summary>
    public static PatientSearchQuery? Parse(IQueryCollection query, bool lenient, List<SearchParameterError> errors)
    {
        var unknown = query.Keys.Where(k => !Known.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0 && !lenient)
        {
            errors.Add(new SearchParameterError(
                $"Unknown or unsupported search parameter(s): {string.Join(", ", unknown)}. Supported: _lastUpdated, _count, _sort, cursor. " +
                "Send 'Prefer: handling=lenient' to have unknown parameters ignored.", unknown[0], NotSupported: true));
        }

        var count = ParseCount(query["_count"], errors);
        var descending = ParseSort(query["_sort"], errors);
        var cursor = Single(query["cursor"], "cursor", errors);
        if (cursor is { Length: 0 })
        {
            errors.Add(new SearchParameterError("cursor must not be empty.", "cursor"));
        }

        var lastUpdated = query["_lastUpdated"];
        if (cursor is not null && lastUpdated.Count > 0)
        {
            errors.Add(new SearchParameterError(
                "cursor cannot be combined with _lastUpdated: the cursor already carries the filter of the search it continues.", "cursor"));
        }

        long? from = null, to = null;
        if (lastUpdated.Count > 2)
        {
            errors.Add(new SearchParameterError("_lastUpdated may appear at most twice (a lower and an upper bound).", "_lastUpdated"));
        }
        else
        {
            foreach (var value in lastUpdated)
            {
                if (ParseLastUpdated(value, errors) is { } bound)
                {
                    if (bound.IsLower)
                    {
                        from = from is null ? bound.Micros : Math.Max(from.Value, bound.Micros);
                    }
                    else
                    {
                        to = to is null ? bound.Micros : Math.Min(to.Value, bound.Micros);
                    }
                }
            }
        }

        if (errors.Count > 0)
        {
            return null;
        }

        return new PatientSearchQuery
        {
            From = from, To = to, LastUpdated = [.. lastUpdated.Select(v => v!)], Count = count, Descending = descending,
            Cursor = cursor, Ignored = lenient ? unknown : [],
        };
    }

    private static string? Single(StringValues values, string name, List<SearchParameterError> errors)
    {
        if (values.Count > 1)
        {
            errors.Add(new SearchParameterError($"{name} may be given only once.", name));
            return null;
        }

        return values.Count == 1 ? values[0] : null;
    }

    private static int? ParseCount(StringValues values, List<SearchParameterError> errors)
    {
        var text = Single(values, "_count", errors);
        if (text is null)
        {
            return null;
        }

        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count is >= 1 and <= MaxCount)
        {
            return count;
        }

        errors.Add(new SearchParameterError($"_count must be a whole number from 1 to {MaxCount} (default {DefaultCount}); got '{text}'.", "_count"));
        return null;
    }

    private static bool ParseSort(StringValues values, List<SearchParameterError> errors)
    {
        var text = Single(values, "_sort", errors);
        switch (text)
        {
            case null or "_lastUpdated":
                return false;
            case "-_lastUpdated":
                return true;
            default:
                errors.Add(new SearchParameterError($"_sort must be _lastUpdated (oldest first, the default) or -_lastUpdated (newest first); got '{text}'.", "_sort"));
                return false;
        }
    }

    /// <summary>
    /// FHIR range semantics: a value v with precision p denotes [v, v+p); ge → ≥ v, lt → &lt; v, le → &lt; v+p, and gt with
    /// minute precision → ≥ v+p. A gt value with seconds is read as a client's copy of a <c>meta.lastUpdated</c>, which
    /// its date library may have truncated, rounded or stripped of trailing zeros: with fewer than six fractional
    /// digits it means "after v − p" (the true stamp S lies above v − p under truncation, rounding to nearest and
    /// rounding up, so nothing after S is skipped; what was stamped after v − p repeats), with six or more "after v"
    /// (FHIR's own meaning at the stamp precision). Computed in nanoseconds, then turned into the stored microseconds.
    /// </summary>
    private static (bool IsLower, long Micros)? ParseLastUpdated(string? value, List<SearchParameterError> errors)
    {
        const string Form = "Use a prefix gt, ge, lt or le and an instant with at least minute precision and a time zone, " +
            "e.g. _lastUpdated=ge2024-01-01T12:00Z or gt2024-01-01T12:00:00.123456+01:00.";
        var match = value is null ? null : LastUpdatedPattern().Match(value);
        if (match is null || !match.Success)
        {
            var reason = value switch
            {
                null or "" => "_lastUpdated is empty.",
                _ when value.Contains(',', StringComparison.Ordinal) => "_lastUpdated takes one value per parameter (no comma lists).",
                _ when value.Length >= 2 && char.IsAsciiDigit(value[0]) => $"_lastUpdated '{value}' has no prefix.",
                _ when value.Length >= 2 && !value.StartsWith("gt", StringComparison.Ordinal) && !value.StartsWith("ge", StringComparison.Ordinal)
                    && !value.StartsWith("lt", StringComparison.Ordinal) && !value.StartsWith("le", StringComparison.Ordinal)
                    => $"_lastUpdated '{value}' has an unsupported prefix.",
                _ => $"_lastUpdated '{value}' is not an instant with at least minute precision and a time zone.",
            };
            errors.Add(new SearchParameterError($"{reason} {Form}", "_lastUpdated"));
            return null;
        }

        var g = match.Groups;
        int Int(string name) => int.Parse(g[name].Value, CultureInfo.InvariantCulture);
        long precisionNanos;
        long fractionNanos = 0;
        if (!g["second"].Success)
        {
            precisionNanos = 60_000_000_000;
        }
        else if (!g["fraction"].Success)
        {
            precisionNanos = 1_000_000_000;
        }
        else
        {
            var digits = g["fraction"].Value;
            precisionNanos = (long)Math.Pow(10, 9 - digits.Length);
            fractionNanos = long.Parse(digits, CultureInfo.InvariantCulture) * precisionNanos;
        }

        DateTimeOffset instant;
        try
        {
            var zone = g["zone"].Value;
            var offset = zone == "Z" ? TimeSpan.Zero
                : new TimeSpan(Int("zh"), Int("zm"), 0) * (zone[0] == '-' ? -1 : 1);
            if (offset.Duration() > TimeSpan.FromHours(14))
            {
                throw new ArgumentOutOfRangeException(nameof(value));
            }

            instant = new DateTimeOffset(Int("year"), Int("month"), Int("day"), Int("hour"), Int("minute"),
                g["second"].Success ? Int("second") : 0, offset);
        }
        catch (ArgumentOutOfRangeException)
        {
            errors.Add(new SearchParameterError($"_lastUpdated '{value}' is not a valid date and time. {Form}", "_lastUpdated"));
            return null;
        }

        // Nanoseconds since the epoch exceed a long after the year 2262: compute in Int128.
        var nanos = ((Int128)(instant.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100) + fractionNanos;
        var micros = g["prefix"].Value switch
        {
            "ge" or "lt" => CeilingMicros(nanos), // a stored u satisfies u ≥ x (or u < x) iff u ≥ ⌈x⌉ (u < ⌈x⌉)
            "le" => CeilingMicros(nanos + precisionNanos),
            _ when !g["second"].Success => CeilingMicros(nanos + precisionNanos),
            _ => FloorMicros(precisionNanos > StampPrecisionNanos ? nanos - precisionNanos : nanos) + 1, // u > x iff u ≥ ⌊x⌋ + 1
        };
        return (g["prefix"].Value is "gt" or "ge", micros);
    }

    private static long CeilingMicros(Int128 nanos) => -FloorMicros(-nanos);

    private static long FloorMicros(Int128 nanos) => (long)(nanos >= 0 ? nanos / 1000 : -((-nanos + 999) / 1000));

    // A space stands for '+' in the zone: an unencoded '+' in a query string arrives decoded as a space.
    [GeneratedRegex(@"^(?<prefix>gt|ge|lt|le)(?<year>\d{4})-(?<month>\d{2})-(?<day>\d{2})T(?<hour>\d{2}):(?<minute>\d{2})(:(?<second>\d{2})(\.(?<fraction>\d{1,9}))?)?(?<zone>Z|[+\- ](?<zh>\d{2}):(?<zm>\d{2}))$", RegexOptions.CultureInvariant)]
    private static partial Regex LastUpdatedPattern();
}

/// <summary>One problem with the search parameters.</summary>
internal sealed record SearchParameterError(string Message, string Parameter, bool NotSupported = false);
