using System.Globalization;

namespace Pit.LoadTest;

/// <summary>The options of <c>soak</c>, parsed from its arguments and held within sane bounds.</summary>
internal sealed record SoakOptions(
    TimeSpan Duration, int Clients, int Connections, TimeSpan Interval, bool PostgresStart, string? Postgres, bool Thresholds)
{
    public static SoakOptions Parse(string[] args)
    {
        string? Value(string name)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        }

        int Number(string name, int fallback, int min, int max)
        {
            var text = Value(name);
            var value = text is null ? fallback : int.Parse(text, CultureInfo.InvariantCulture);
            return value >= min && value <= max ? value : throw new ArgumentOutOfRangeException(name, value, $"{name} must be {min}-{max}.");
        }

        var duration = Value("--seconds") is not null
            ? TimeSpan.FromSeconds(Number("--seconds", 0, 1, 86_400))
            : TimeSpan.FromMinutes(Number("--minutes", 10, 1, 1_440));
        return new SoakOptions(
            duration,
            Number("--clients", 64, 1, 10_000),
            Number("--connections", 32, 1, 1_024),
            TimeSpan.FromSeconds(Number("--interval", 10, 1, 3_600)),
            args.Contains("--postgres-start"),
            Value("--postgres"),
            !args.Contains("--no-thresholds"));
    }
}
