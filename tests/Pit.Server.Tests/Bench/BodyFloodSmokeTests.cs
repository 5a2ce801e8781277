using System.Text.RegularExpressions;
using Pit.LoadTest;

namespace Pit.Server.Tests.Bench;

/// <summary>
/// Runs the <c>bodies</c> harness small against the real server process on SQLite, so that it keeps working as the
/// server changes: large POSTs at once through a budget that holds two of them with no wait (those that overlap are
/// answered 503 + Retry-After and retried; how many overlap depends on the machine, and the 503 itself is tested in
/// BodyBudgetTests), and every one accepted is applied. The full run (512 at once, peak RSS, both engines) is a
/// benchmark: docs/PERFORMANCE.md, "Bounded request bodies".
/// </summary>
public sealed class BodyFloodSmokeTests
{
    [Fact]
    public async Task Concurrent_large_posts_through_a_small_body_budget_are_all_accepted_in_the_end_and_applied()
    {
        using var output = new StringWriter();
        var exitCode = await BodyFlood.RunAsync(
            ["--requests", "12", "--max-rss-mb", "100000", "--set", "Pit:Processing:MaxInFlightBodyBytes=2000000", "--set", "Pit:Processing:InFlightBodyWait=00:00:00"],
            output);

        var text = output.ToString();
        Assert.True(exitCode == 0, text);
        var summary = Regex.Match(text, @"^bodies sqlite: 12 concurrent POSTs of 880000 bytes .*: 12 accepted \(202\), (\d+) answered 503 \+ Retry-After and retried, 0 unexpected; 12 of 12 applied", RegexOptions.Multiline);
        Assert.True(summary.Success, text);
        Assert.Matches(new Regex(@"^server RSS before [1-9]\d* MB, peak [1-9]\d* MB", RegexOptions.Multiline), text);
    }
}
