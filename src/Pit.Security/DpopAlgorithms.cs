namespace Pit.Security;

/// <summary>The asymmetric JWS algorithms HelseID advertises, for DPoP proofs and client assertions.</summary>
public static class DpopAlgorithms
{
    /// <summary>RS, PS and ES with SHA-256/384/512, in HelseID's order.</summary>
    public static IReadOnlyList<string> All { get; } = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    /// <summary>Whether <paramref name="algorithm"/> is one of <see cref="All"/> (exact, case-sensitive).</summary>
    public static bool IsSupported(string? algorithm) => algorithm is not null && All.Contains(algorithm, StringComparer.Ordinal);
}
