using Pit.Security;

namespace Pit.Server.Patients;

/// <summary>Norwegian person identifier systems and the check of each (the number rules live in <see cref="NorwegianIdentityNumbers"/>).</summary>
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
            Fnr => NorwegianIdentityNumbers.Check(value, dNumber: false, allowSynthetic) is { } r ? "Invalid fødselsnummer: " + r : null,
            Dnr => NorwegianIdentityNumbers.Check(value, dNumber: true, allowSynthetic) is { } r ? "Invalid D-number: " + r : null,
            _ => value.Length is > 0 and <= 64 && value.All(char.IsAsciiLetterOrDigit) ? null : "The value must be 1-64 letters or digits.",
        };
    }
}
