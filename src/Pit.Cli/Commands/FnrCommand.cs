using System.CommandLine;
using System.Globalization;
using Pit.Security;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary>
/// <c>pit fnr</c>: synthetic fødselsnummer for tests (month + 80, valid control digits), from the same rules the
/// server validates with. No real person has these numbers.
/// </summary>
internal static class FnrCommand
{
    public static Command Build(PitCli cli)
    {
        var count = new Option<int>("--count") { Description = "How many numbers (1-10000).", DefaultValueFactory = _ => 1 };
        var born = new Option<string?>("--born") { Description = "Birth date (yyyy-MM-dd, 1854-2039); default: random dates from 1930 to 2020." };
        var command = new Command("fnr", "Print synthetic test fødselsnummer (month + 80, valid control digits), one a line; needs no server.") { count, born };
        command.SetAction(parse =>
        {
            var n = parse.GetValue(count);
            if (n is < 1 or > 10_000)
            {
                cli.Context.Error.MarkupLine("[red]--count must be between 1 and 10000.[/]");
                return ExitCodes.Usage;
            }

            DateOnly? date = null;
            if (parse.GetValue(born) is { } text)
            {
                if (!DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var parsed) || parsed.Year is < 1854 or > 2039)
                {
                    cli.Context.Error.MarkupLineInterpolated($"[red]--born needs a date from 1854-01-01 to 2039-12-31 as yyyy-MM-dd, not '{text}'.[/]");
                    return ExitCodes.Usage;
                }

                date = parsed;
            }

            var first = new DateOnly(1930, 1, 1).DayNumber;
            var last = new DateOnly(2020, 12, 31).DayNumber;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            // Random is enough: these are test data, not secrets. Distinct, unless one date runs out of numbers.
            for (var attempts = 0; seen.Count < n && attempts < n * 20; attempts++)
            {
                var birth = date ?? DateOnly.FromDayNumber(Random.Shared.Next(first, last + 1));
                var number = NorwegianIdentityNumbers.Synthetic(birth, Random.Shared.Next(1000));
                if (seen.Add(number))
                {
                    cli.Context.WriteData(number);
                }
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
