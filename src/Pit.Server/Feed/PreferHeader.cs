using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace Pit.Server.Feed;

/// <summary>
/// The preferences of a search's <c>Prefer</c> headers (RFC 7240) that this server acts on: <c>handling</c> (FHIR:
/// lenient or strict) and <c>wait</c> (seconds to hold a search whose page is empty). As RFC 7240 asks, only the
/// first occurrence of each preference counts and unknown preferences are ignored.
/// </summary>
internal sealed record PreferHeader(bool Lenient, int? WaitSeconds, string? MalformedWait)
{
    /// <summary>Reads every <c>Prefer</c> header value, each a comma-separated list of <c>name[=value][;parameters]</c>.</summary>
    public static PreferHeader Parse(StringValues headers)
    {
        string? handling = null, wait = null;
        foreach (var header in headers)
        {
            foreach (var item in (header ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var preference = item.Split(';', 2)[0];
                var equals = preference.IndexOf('=', StringComparison.Ordinal);
                var name = (equals < 0 ? preference : preference[..equals]).Trim();
                var value = equals < 0 ? "" : preference[(equals + 1)..].Trim().Trim('"');
                if (name.Equals("handling", StringComparison.OrdinalIgnoreCase))
                {
                    handling ??= value;
                }
                else if (name.Equals("wait", StringComparison.OrdinalIgnoreCase))
                {
                    wait ??= value;
                }
            }
        }

        var lenient = string.Equals(handling, "lenient", StringComparison.OrdinalIgnoreCase);
        if (wait is null)
        {
            return new(lenient, null, null);
        }

        // delta-seconds: one or more digits. A number too large for an int is still a valid (very long) wait.
        if (wait.Length > 0 && wait.All(char.IsAsciiDigit))
        {
            return new(lenient, int.TryParse(wait, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) ? seconds : int.MaxValue, null);
        }

        return new(lenient, null, wait);
    }

    /// <summary>How long to hold the search: the requested wait clamped to <paramref name="max"/>; zero when none was asked.</summary>
    public TimeSpan Wait(TimeSpan max) =>
        WaitSeconds is { } seconds ? TimeSpan.FromSeconds(Math.Min(seconds, max.TotalSeconds)) : TimeSpan.Zero;
}
