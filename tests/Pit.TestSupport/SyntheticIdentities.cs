using System.Globalization;

namespace Pit.TestSupport;

/// <summary>
/// Synthetic Norwegian fødselsnummer (month + 80, as Norway's test numbers) with valid mod-11 control digits, for
/// tests and load generation. Never a real person's number.
/// </summary>
public static class SyntheticIdentities
{
    private static readonly int[] Weights1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    private static readonly int[] Weights2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

    /// <summary>
    /// An 11-digit number with valid control digits for these date parts (whether or not the date exists), trying
    /// individual numbers from <paramref name="individual"/> upwards until the control digits exist.
    /// </summary>
    public static string FromParts(int day, int month, int year, int individual)
    {
        for (var i = individual; ; i = (i + 1) % 1000)
        {
            if (Exact(day, month, year, i) is { } number)
            {
                return number;
            }
        }
    }

    /// <summary>The number with exactly these parts, or null when no valid control digits exist for them.</summary>
    public static string? Exact(int day, int month, int year, int individual)
    {
        var digits = string.Create(CultureInfo.InvariantCulture, $"{day:00}{month:00}{year % 100:00}{individual:000}");
        var k1 = Control(digits, Weights1);
        var k2 = k1 < 0 ? -1 : Control(digits + k1, Weights2);
        return k2 < 0 ? null : string.Create(CultureInfo.InvariantCulture, $"{digits}{k1}{k2}");
    }

    /// <summary>
    /// The <paramref name="n"/>th candidate of a sequence of distinct synthetic numbers (for n up to about 16 million),
    /// or null when that candidate has no valid control digits: skip it.
    /// </summary>
    public static string? Candidate(long n) =>
        Exact((int)(n % 28) + 1, (int)(n / 28 % 12) + 81, (int)(n / 336 % 100), (int)(n / 33600 % 500));

    // -1 when the remainder would give 10: no valid control digit exists for these digits.
    private static int Control(string digits, int[] weights)
    {
        var sum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            sum += (digits[i] - '0') * weights[i];
        }

        var c = 11 - (sum % 11);
        return c == 11 ? 0 : c == 10 ? -1 : c;
    }
}
