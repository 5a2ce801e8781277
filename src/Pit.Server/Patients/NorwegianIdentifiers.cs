namespace Pit.Server.Patients;

/// <summary>Norwegian person identifier systems and the checks the issue asks for.</summary>
internal static class NorwegianIdentifiers
{
    /// <summary>Fødselsnummer.</summary>
    public const string Fnr = "urn:oid:2.16.578.1.12.4.1.4.1";
    /// <summary>D-number.</summary>
    public const string Dnr = "urn:oid:2.16.578.1.12.4.1.4.2";
    /// <summary>H-number.</summary>
    public const string Hnr = "urn:oid:2.16.578.1.12.4.1.4.3";
    /// <summary>FH-number.</summary>
    public const string FHnr = "urn:oid:2.16.578.1.12.4.1.4.4";
    /// <summary>DUF-number.</summary>
    public const string Duf = "urn:oid:2.16.578.1.12.4.1.4.5";

    private static readonly int[] Weights1 = [3, 7, 6, 1, 8, 9, 4, 5, 2];
    private static readonly int[] Weights2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

    /// <summary>Whether <paramref name="system"/> is one of the person identifier systems.</summary>
    public static bool IsPersonSystem(string? system) => system is Fnr or Dnr or Hnr or FHnr or Duf;

    /// <summary>Checks a value of a person identifier system; null when valid, else the reason.</summary>
    public static string? Check(string system, string? value, bool allowSynthetic)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "The identifier has no value.";
        }

        return system switch
        {
            Fnr => CheckBirthNumber(value, dNumber: false, allowSynthetic) is { } r ? "Invalid fødselsnummer: " + r : null,
            Dnr => CheckBirthNumber(value, dNumber: true, allowSynthetic) is { } r ? "Invalid D-number: " + r : null,
            _ => value.Length is > 0 and <= 64 && value.All(char.IsAsciiLetterOrDigit) ? null : "The value must be 1-64 letters or digits.",
        };
    }

    private static string? CheckBirthNumber(string value, bool dNumber, bool allowSynthetic)
    {
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
        var individual = int.Parse(value.AsSpan(6, 3), System.Globalization.CultureInfo.InvariantCulture);
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

        int? century = individual switch
        {
            <= 499 => 1900,
            <= 749 when year >= 54 => 1800,
            <= 999 when year <= 39 => 2000,
            >= 900 when year >= 40 => 1900,
            _ => null,
        };
        if (century is null || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(century.Value + year, month))
        {
            return "the date part is not a valid date.";
        }

        return null;
    }

    // Returns -1 when the remainder would give 10 (no valid control digit exists).
    private static int ControlDigit(string value, int[] weights)
    {
        var sum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            sum += (value[i] - '0') * weights[i];
        }

        var control = 11 - (sum % 11);
        return control switch { 11 => 0, 10 => -1, _ => control };
    }
}
