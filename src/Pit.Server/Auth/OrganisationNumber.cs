namespace Pit.Server.Auth;

/// <summary>Norwegian organisation numbers (Enhetsregisteret): 9 digits, mod-11 with weights 3 2 7 6 5 4 3 2.</summary>
internal static class OrganisationNumber
{
    private static readonly int[] Weights = [3, 2, 7, 6, 5, 4, 3, 2];

    /// <summary>Whether <paramref name="value"/> is 9 digits with a valid control digit.</summary>
    public static bool IsValid(string? value)
    {
        if (value is not { Length: 9 } || !value.All(char.IsAsciiDigit))
        {
            return false;
        }

        var sum = 0;
        for (var i = 0; i < 8; i++)
        {
            sum += (value[i] - '0') * Weights[i];
        }

        var control = 11 - (sum % 11);
        if (control == 11)
        {
            control = 0;
        }

        return control != 10 && control == value[8] - '0';
    }
}
