using System.Buffers.Text;
using System.Security.Cryptography;

namespace Pit.Security;

/// <summary>Key parameters from the members of a JWK (RFC 7518 §6.2 and §6.3).</summary>
public static class JwkParameters
{
    /// <summary>
    /// Reads RSA n, e and, when present, the private members d, p, q, dp, dq, qi.
    /// </summary>
    /// <param name="member">Returns a member's base64url text, or null when the JWK lacks it.</param>
    /// <exception cref="FormatException">A member is not base64url.</exception>
    public static RSAParameters Rsa(Func<string, string?> member)
    {
        ArgumentNullException.ThrowIfNull(member);
        byte[]? Part(string name) => member(name) is { } v ? Base64Url.DecodeFromChars(v) : null;
        return new RSAParameters
        {
            Modulus = Part("n"),
            Exponent = Part("e"),
            D = Part("d"),
            P = Part("p"),
            Q = Part("q"),
            DP = Part("dp"),
            DQ = Part("dq"),
            InverseQ = Part("qi"),
        };
    }

    /// <summary>Reads EC crv, x, y and, when present, the private member d.</summary>
    /// <param name="member">Returns a member's text, or null when the JWK lacks it.</param>
    /// <exception cref="ArgumentException">The curve is not P-256, P-384 or P-521.</exception>
    /// <exception cref="FormatException">A coordinate is not base64url.</exception>
    public static ECParameters Ec(Func<string, string?> member)
    {
        ArgumentNullException.ThrowIfNull(member);
        byte[]? Part(string name) => member(name) is { } v ? Base64Url.DecodeFromChars(v) : null;
        return new ECParameters
        {
            Curve = Curve(member("crv")),
            Q = new ECPoint { X = Part("x"), Y = Part("y") },
            D = Part("d"),
        };
    }

    /// <summary>The named curve of a JWK <c>crv</c>.</summary>
    /// <exception cref="ArgumentException">The curve is not P-256, P-384 or P-521.</exception>
    public static ECCurve Curve(string? crv) => crv switch
    {
        "P-256" => ECCurve.NamedCurves.nistP256,
        "P-384" => ECCurve.NamedCurves.nistP384,
        "P-521" => ECCurve.NamedCurves.nistP521,
        _ => throw new ArgumentException($"Unsupported EC curve '{crv}': use P-256, P-384 or P-521.", nameof(crv)),
    };
}
