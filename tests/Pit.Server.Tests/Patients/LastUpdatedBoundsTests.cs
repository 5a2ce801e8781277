using System.Globalization;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Pit.Server.Patients;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Patients;

/// <summary>
/// The <c>_lastUpdated</c> bounds as parsed into the typed query (microseconds, lower inclusive, upper exclusive). A
/// <c>gt</c> value with seconds is a client's copy of a <c>meta.lastUpdated</c>: with fewer than six fractional digits it
/// means "after the value minus one unit of its last digit", so a copy that a date library truncated, rounded or
/// stripped of trailing zeros never skips a version.
/// </summary>
public sealed class LastUpdatedBoundsTests
{
    [Theory]
    // gt with seconds and fewer than six fractional digits: after value − one unit of the last digit.
    [InlineData("gt2026-11-25T10:15:53.004Z", "2026-11-25T10:15:53.003001Z")]
    [InlineData("gt2026-11-25T10:15:53.00401Z", "2026-11-25T10:15:53.004001Z")]
    [InlineData("gt2026-11-25T10:15:53.4Z", "2026-11-25T10:15:53.300001Z")]
    [InlineData("gt2026-11-25T10:15:53Z", "2026-11-25T10:15:52.000001Z")]
    [InlineData("gt2026-11-25T10:15:00Z", "2026-11-25T10:14:59.000001Z")]
    [InlineData("gt2026-11-25T10:15:53.000Z", "2026-11-25T10:15:52.999001Z")]
    [InlineData("gt2026-11-25T11:15:53.004+01:00", "2026-11-25T10:15:53.003001Z")]
    [InlineData("gt2026-11-25T11:15:53.004 01:00", "2026-11-25T10:15:53.003001Z")]
    [InlineData("gt2026-11-25T09:15:53.004-01:00", "2026-11-25T10:15:53.003001Z")]
    // Six or more digits: the exact instant, as FHIR's rule reads it at the stamp precision.
    [InlineData("gt2026-11-25T10:15:53.004000Z", "2026-11-25T10:15:53.004001Z")]
    [InlineData("gt2026-11-25T10:15:53.004010Z", "2026-11-25T10:15:53.004011Z")]
    [InlineData("gt2026-11-25T10:15:53.0040100Z", "2026-11-25T10:15:53.004011Z")]
    [InlineData("gt2026-11-25T10:15:53.0040105Z", "2026-11-25T10:15:53.004011Z")]
    [InlineData("gt2026-11-25T10:15:53.004010999Z", "2026-11-25T10:15:53.004011Z")]
    // Minute precision is not a copy of an instant: FHIR range semantics (gt 10:15 means from 10:16).
    [InlineData("gt2026-11-25T10:15Z", "2026-11-25T10:16:00.000000Z")]
    [InlineData("gt2026-11-25T11:15+01:00", "2026-11-25T10:16:00.000000Z")]
    // ge is unchanged: from the start of the value's interval.
    [InlineData("ge2026-11-25T10:15:53.004Z", "2026-11-25T10:15:53.004000Z")]
    [InlineData("ge2026-11-25T10:15:53Z", "2026-11-25T10:15:53.000000Z")]
    [InlineData("ge2026-11-25T10:15Z", "2026-11-25T10:15:00.000000Z")]
    [InlineData("ge2026-11-25T10:15:53.0040101Z", "2026-11-25T10:15:53.004011Z")]
    public void A_lower_bound_starts_at_the_first_stamp_it_includes(string value, string firstIncluded)
    {
        var query = Parse("_lastUpdated=" + Uri.EscapeDataString(value).Replace("%20", "+", StringComparison.Ordinal));

        Assert.Equal(Micros(firstIncluded), query.From);
        Assert.Null(query.To);
    }

    [Theory]
    [InlineData("lt2026-11-25T10:15:53.004Z", "2026-11-25T10:15:53.004000Z")]
    [InlineData("le2026-11-25T10:15:53.004Z", "2026-11-25T10:15:53.005000Z")]
    [InlineData("lt2026-11-25T10:15:53Z", "2026-11-25T10:15:53.000000Z")]
    [InlineData("le2026-11-25T10:15:53Z", "2026-11-25T10:15:54.000000Z")]
    [InlineData("le2026-11-25T10:15Z", "2026-11-25T10:16:00.000000Z")]
    [InlineData("lt2026-11-25T10:15:53.004010Z", "2026-11-25T10:15:53.004010Z")]
    [InlineData("le2026-11-25T10:15:53.004010Z", "2026-11-25T10:15:53.004011Z")]
    [InlineData("lt2026-11-25T10:15:53.0040101Z", "2026-11-25T10:15:53.004011Z")]
    public void An_upper_bound_ends_before_the_first_stamp_it_excludes_and_is_unchanged_by_the_resume_rule(string value, string firstExcluded)
    {
        var query = Parse("_lastUpdated=" + Uri.EscapeDataString(value));

        Assert.Null(query.From);
        Assert.Equal(Micros(firstExcluded), query.To);
    }

    [Fact]
    public void Bounds_before_the_epoch_and_at_the_ends_of_the_calendar_are_exact()
    {
        var yearOne = Micros("0001-01-01T00:00:00.000000Z");

        Assert.Equal(yearOne - 1_000_000 + 1, Parse("_lastUpdated=gt0001-01-01T00:00:00Z").From);
        Assert.Equal(yearOne - 1_000 + 1, Parse("_lastUpdated=gt0001-01-01T00:00:00.000Z").From);
        Assert.Equal(yearOne + 60_000_000, Parse("_lastUpdated=gt0001-01-01T00:00Z").From);
        Assert.Equal(Micros("1969-12-31T23:59:59.998001Z"), Parse("_lastUpdated=gt1969-12-31T23:59:59.999Z").From);
        Assert.Equal(Micros("1969-12-31T23:59:59.999001Z"), Parse("_lastUpdated=gt1969-12-31T23:59:59.999000Z").From);
        Assert.Equal(Micros("1969-12-31T23:59:59.999000Z"), Parse("_lastUpdated=lt1969-12-31T23:59:59.999Z").To);
        Assert.Equal(Micros("9999-12-31T09:59:59.999999Z") + 1, Parse("_lastUpdated=gt9999-12-31T23:59:59.999999999%2B14:00").From);
        Assert.Equal(Micros("9999-12-31T23:59:59.999999Z") + 1, Parse("_lastUpdated=le9999-12-31T23:59:59.999999Z").To);
    }

    [Fact]
    public void Two_lower_bounds_keep_the_later_one()
    {
        var query = Parse("_lastUpdated=gt2026-11-25T10:15:53Z&_lastUpdated=ge2026-11-25T10:15:52.5Z");

        Assert.Equal(Micros("2026-11-25T10:15:52.500000Z"), query.From);
    }

    /// <summary>
    /// Every way a date library loses digits of a stamp S (truncation, rounding to nearest, rounding up, each then
    /// possibly stripped of trailing zeros, at 0 to 6 fractional digits): the resumed search includes every stamp after
    /// S, and repeats only stamps within one unit of the value's last digit below the value.
    /// </summary>
    [Fact]
    public void A_resume_value_cut_from_a_stamp_in_any_common_way_includes_every_later_stamp_and_repeats_less_than_one_unit()
    {
        var random = new Random(20261125);
        var origin = Micros("2026-11-25T10:15:00.000000Z");
        var stamps = Enumerable.Range(0, 4000).Select(_ => origin + random.NextInt64(0, 120_000_000))
            .Concat([origin, origin + 4_000, origin + 4_010, origin + 999_999, origin + 59_999_999, origin + 60_000_000, origin + 500_000, origin + 4_500]);
        var checkedValues = 0;
        foreach (var stamp in stamps)
        {
            for (var digits = 0; digits <= 6; digits++)
            {
                foreach (var cut in Cuts(stamp, digits))
                {
                    foreach (var text in Renderings(cut, digits))
                    {
                        var from = Parse("_lastUpdated=gt" + Uri.EscapeDataString(text)).From!.Value;
                        var shown = TextDigits(text);
                        var unit = shown == 6 ? 0 : (long)Math.Pow(10, 6 - shown);

                        Assert.True(from <= stamp + 1, $"gt{text} (a copy of {FeedTime.Format(stamp)}) would skip the next stamp: it starts at {FeedTime.Format(from)}.");
                        Assert.Equal(cut - unit + 1, from); // repeats only stamps less than one unit below the value
                        checkedValues++;
                    }
                }
            }
        }

        Assert.True(checkedValues > 4000 * 7 * 3);
    }

    [Fact]
    public void Firelys_own_rendering_of_a_stamp_drops_trailing_zeros_and_still_resumes_without_a_gap()
    {
        // What a Firely SDK user holds: meta.lastUpdated parsed into a DateTimeOffset, written back as a FhirDateTime.
        var patient = System.Text.Json.JsonSerializer.Deserialize<Patient>(
            """{"resourceType":"Patient","meta":{"lastUpdated":"2026-11-25T10:15:53.004000Z"}}""",
            new System.Text.Json.JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector))!;
        var copy = new FhirDateTime(patient.Meta!.LastUpdated!.Value).ToString()!;

        Assert.Equal("2026-11-25T10:15:53.004+00:00", copy);
        Assert.Equal(Micros("2026-11-25T10:15:53.003001Z"), Parse("_lastUpdated=gt" + Uri.EscapeDataString(copy)).From);
    }

    /// <summary>The stamp cut to <paramref name="digits"/>: truncated, rounded half up, rounded up (microseconds).</summary>
    private static IEnumerable<long> Cuts(long stamp, int digits)
    {
        var unit = (long)Math.Pow(10, 6 - digits);
        var truncated = stamp - Mod(stamp, unit);
        yield return truncated;
        yield return Mod(stamp, unit) * 2 >= unit ? truncated + unit : truncated;
        yield return Mod(stamp, unit) == 0 ? stamp : truncated + unit;
    }

    /// <summary>The cut written with exactly <paramref name="digits"/> digits, and with its trailing zeros stripped, in UTC and at +01:00.</summary>
    private static IEnumerable<string> Renderings(long micros, int digits)
    {
        var instant = FeedTime.ToDateTimeOffset(micros);
        var fraction = digits == 0 ? "" : "." + new string('f', digits);
        var stripped = digits == 0 ? "" : "." + new string('F', digits);
        yield return instant.ToString("yyyy-MM-dd'T'HH:mm:ss" + fraction + "'Z'", CultureInfo.InvariantCulture);
        yield return instant.ToOffset(TimeSpan.FromHours(1)).ToString("yyyy-MM-dd'T'HH:mm:ss" + stripped + "zzz", CultureInfo.InvariantCulture);
    }

    private static int TextDigits(string text)
    {
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? 0 : text[(dot + 1)..].TakeWhile(char.IsAsciiDigit).Count();
    }

    private static long Mod(long value, long unit) => ((value % unit) + unit) % unit;

    private static PatientSearchQuery Parse(string queryString)
    {
        var errors = new List<SearchParameterError>();
        var query = PatientSearchQuery.Parse(new QueryCollection(QueryHelpers.ParseQuery(queryString)), lenient: false, errors);
        Assert.True(query is not null, string.Join("; ", errors.Select(e => e.Message)));
        return query;
    }

    private static long Micros(string instant)
    {
        var value = DateTimeOffset.ParseExact(instant, "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
        return FeedTime.FromDateTimeOffset(value);
    }
}
