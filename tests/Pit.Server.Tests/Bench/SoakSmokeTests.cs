using System.Text.RegularExpressions;
using Pit.LoadTest;

namespace Pit.Server.Tests.Bench;

/// <summary>Runs the soak harness briefly on SQLite, without thresholds, so that it keeps working as the server changes.</summary>
public sealed class SoakSmokeTests
{
    [Fact]
    public async Task A_few_seconds_of_soak_print_interval_lines_and_a_summary_of_real_traffic()
    {
        using var output = new StringWriter();
        var exitCode = await Soak.RunAsync(["--seconds", "6", "--interval", "2", "--clients", "8", "--connections", "4", "--no-thresholds"], output);

        var text = output.ToString();
        Assert.True(exitCode == 0, text);
        Assert.Matches(new Regex(@"^\[\s+2 s\] .* req/s .*server RSS [1-9]\d* MB", RegexOptions.Multiline), text);
        var summary = Regex.Match(text, @"^soak summary: sqlite .*: (\d+) requests", RegexOptions.Multiline);
        Assert.True(summary.Success, text);
        Assert.True(long.Parse(summary.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, text);
    }
}
