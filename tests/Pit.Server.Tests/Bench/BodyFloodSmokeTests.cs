using System.Text.RegularExpressions;
using Pit.LoadTest;

namespace Pit.Server.Tests.Bench;

/// <summary>
/// Runs the <c>bodies</c> harness small against the real server process on SQLite: large POSTs at once through a
/// budget that holds only a few of them, so some are answered 503 + Retry-After and retried, and every one accepted
/// is applied. The full run (512 at once, peak RSS, both engines) is a benchmark: docs/PERFORMANCE.md.
/// </summary>
public sealed class BodyFloodSmokeTests
{
    [Fact]
    public async Task Concurrent_large_posts_beyond_the_body_budget_are_refused_with_Retry_After_retried_and_all_applied()
    {
        using var output = new StringWriter();
        var exitCode = await BodyFlood.RunAsync(
            ["--requests", "12", "--max-rss-mb", "100000", "--set", "Pit:Processing:MaxInFlightBodyBytes=4000000", "--set", "Pit:Processing:InFlightBodyWait=00:00:00"],
            output);

        var text = output.ToString();
        Assert.True(exitCode == 0, text);
        var summary = Regex.Match(text, @"^bodies sqlite: 12 concurrent POSTs of 880000 bytes .*: 12 accepted \(202\), (\d+) answered 503 \+ Retry-After and retried, 0 unexpected; 12 of 12 applied", RegexOptions.Multiline);
        Assert.True(summary.Success, text);
        Assert.True(int.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, text);
        Assert.Matches(new Regex(@"^server RSS before [1-9]\d* MB, peak [1-9]\d* MB", RegexOptions.Multiline), text);
    }
}
