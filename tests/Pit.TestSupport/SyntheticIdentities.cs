using Pit.Security;

namespace Pit.TestSupport;

/// <summary>
/// Synthetic Norwegian fødselsnummer (month + 80, as Norway's test numbers) with valid mod-11 control digits, for
/// tests and load generation. Never a real person's number. The rules are
/// <see cref="NorwegianIdentityNumbers"/>'s, which the server validates with.
/// </summary>
public static class SyntheticIdentities
{
    /// <summary>
    /// An 11-digit number with valid control digits for these date parts (whether or not the date exists), trying
    /// individual numbers from <paramref name="individual"/> upwards until the control digits exist.
    /// </summary>
    public static string FromParts(int day, int month, int year, int individual) => NorwegianIdentityNumbers.FromParts(day, month, year, individual);

    /// <summary>The number with exactly these parts, or null when no valid control digits exist for them.</summary>
    public static string? Exact(int day, int month, int year, int individual) => NorwegianIdentityNumbers.Exact(day, month, year, individual);

    /// <summary>
    /// The <paramref name="n"/>th candidate of a sequence of distinct synthetic numbers (for n up to about 16 million),
    /// or null when that candidate has no valid control digits: skip it.
    /// </summary>
    public static string? Candidate(long n) =>
        Exact((int)(n % 28) + 1, (int)(n / 28 % 12) + 81, (int)(n / 336 % 100), (int)(n / 33600 % 500));
}
