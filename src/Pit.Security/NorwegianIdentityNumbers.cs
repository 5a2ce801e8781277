using System.Globalization;

namespace Pit.Security;

/// <summary>
/// Norwegian fødselsnummer and D-numbers: their mod-11 control digits, the date they encode, and synthetic test
/// numbers (month + 80, as Norway's test numbers; month + 40 is the older synthetic form). The server's validation,
/// the <c>pit fnr</c> command and the tests' generators all use this one implementation.
/// </summary>
public static class NorwegianIdentityNumbers
{
    private static readonly int[] Weights1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    private static readonly int[] Weights2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

    /// <summary>
    /// Checks an 11-digit fødselsnummer (or D-number when <paramref name="dNumber"/>): digits, control digits and date.
    /// </summary>
    /// <param name="value">The number.</param>
    /// <param name="dNumber">Whether it is a D-number (4 added to the first digit).</param>
    /// <param name="allowSynthetic">Whether synthetic test numbers (month + 40 or + 80) are accepted.</param>
    /// <returns>Null when valid, else why not (lower case, to follow "Invalid fødselsnummer: ").</returns>
    public static string? Check(string value, bool dNumber, bool allowSynthetic)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length != 11 || !value.All(char.IsAsciiDigit))
        {
            return "it must be exactly 11 digits.";
        }

        if (ControlDigit(value, Weights1) != value[9] - '0' || ControlDigit(value, Weights2) != value[10] - '0')
        {
            return "the control digits do not match.";
        }

        var day = ((value[0] - '0') * 10) + (value[1] - '0');
        var month = ((value[2] - '0') * 10) + (value[3] - '0');
        var year = ((value[4] - '0') * 10) + (value[5] - '0');
        var individual = int.Parse(value.AsSpan(6, 3), CultureInfo.InvariantCulture);
        if (dNumber)
        {
            if (day <= 40)
            {
                return "a D-number has 4 added to its first digit.";
            }

            day -= 40;
        }
        else if (day > 40)
        {
            return "the day is out of range (is this a D-number?).";
        }

        if (month > 40)
        {
            if (!allowSynthetic)
            {
                return "synthetic test numbers are not accepted here.";
            }

            month -= month > 80 ? 80 : 40;
        }

        var century = Century(year, individual);
        if (century is null || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(century.Value + year, month))
        {
            return "the date part is not a valid date.";
        }

        return null;
    }

    /// <summary>
    /// The synthetic fødselsnummer of someone born on <paramref name="birthDate"/> (month + 80), with the first
    /// individual number from <paramref name="individual"/> upwards (within the range of the birth year's century)
    /// for which control digits exist.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The year is outside 1854-2039, which the numbers cannot encode.</exception>
    public static string Synthetic(DateOnly birthDate, int individual = 0)
    {
        var (low, high) = birthDate.Year switch
        {
            >= 1854 and <= 1899 => (500, 749),
            >= 1900 and <= 1999 => (0, 499),
            >= 2000 and <= 2039 => (500, 999),
            _ => throw new ArgumentOutOfRangeException(nameof(birthDate), "Birth years 1854-2039 only."),
        };
        for (var i = 0; i <= high - low; i++)
        {
            var candidate = low + ((Math.Max(individual - low, 0) + i) % (high - low + 1));
            if (Exact(birthDate.Day, birthDate.Month + 80, birthDate.Year, candidate) is { } number)
            {
                return number;
            }
        }

        throw new InvalidOperationException("No individual number gives valid control digits."); // never for a real date
    }

    /// <summary>
    /// An 11-digit number with valid control digits for these parts (whether or not the date exists), trying
    /// individual numbers from <paramref name="individual"/> upwards until the control digits exist.
    /// </summary>
    /// <param name="day">Day, as written (D-numbers add 40).</param>
    /// <param name="month">Month, as written (synthetic numbers add 40 or 80).</param>
    /// <param name="year">Year; only its last two digits are written.</param>
    /// <param name="individual">First individual number (0-999) to try.</param>
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
    /// <param name="day">Day, as written.</param>
    /// <param name="month">Month, as written.</param>
    /// <param name="year">Year; only its last two digits are written.</param>
    /// <param name="individual">Individual number, 0-999.</param>
    public static string? Exact(int day, int month, int year, int individual)
    {
        var digits = string.Create(CultureInfo.InvariantCulture, $"{day:00}{month:00}{year % 100:00}{individual:000}");
        var k1 = ControlDigit(digits, Weights1);
        var k2 = k1 < 0 ? -1 : ControlDigit(digits + k1.ToString(CultureInfo.InvariantCulture), Weights2);
        return k2 < 0 ? null : string.Create(CultureInfo.InvariantCulture, $"{digits}{k1}{k2}");
    }

    // The century a two-digit year belongs to, from the individual number's range.
    private static int? Century(int year, int individual) => individual switch
    {
        <= 499 => 1900,
        <= 749 when year >= 54 => 1800,
        <= 999 when year <= 39 => 2000,
        >= 900 when year >= 40 => 1900,
        _ => null,
    };

    // -1 when the remainder would give 10: no valid control digit exists for these digits.
    private static int ControlDigit(string digits, int[] weights)
    {
        var sum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            sum += (digits[i] - '0') * weights[i];
        }

        var control = 11 - (sum % 11);
        return control switch { 11 => 0, 10 => -1, _ => control };
    }
}
