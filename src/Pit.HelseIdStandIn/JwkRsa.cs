using System.Buffers.Text;
using System.Security.Cryptography;

namespace Pit.HelseIdStandIn;

/// <summary>RSA key parameters from the members of a JWK (RFC 7518 §6.3).</summary>
public static class JwkRsa
{
    /// <summary>
    /// Reads n, e and, when present, the private members d, p, q, dp, dq, qi; <paramref name="member"/> returns a
    /// member's base64url text or null.
    /// </summary>
    public static RSAParameters ToParameters(Func<string, string?> member)
    {
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
}
