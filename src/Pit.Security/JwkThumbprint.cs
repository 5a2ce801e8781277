using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;

namespace Pit.Security;

/// <summary>
/// RFC 7638 JWK SHA-256 thumbprints: SHA-256 over the required public members in lexicographic order, without
/// whitespace, base64url-encoded. This is what a DPoP-bound access token's <c>cnf.jkt</c> holds.
/// </summary>
public static class JwkThumbprint
{
    /// <summary>The thumbprint of an RSA public key.</summary>
    /// <param name="e">The exponent, base64url.</param>
    /// <param name="n">The modulus, base64url.</param>
    /// <exception cref="ArgumentException">A member is empty or not base64url.</exception>
    public static string Rsa(string e, string n)
    {
        RequireBase64Url(e, nameof(e));
        RequireBase64Url(n, nameof(n));
        return Hash($$"""{"e":"{{e}}","kty":"RSA","n":"{{n}}"}""");
    }

    /// <summary>The thumbprint of an EC public key.</summary>
    /// <param name="crv">The curve: <c>P-256</c>, <c>P-384</c> or <c>P-521</c>.</param>
    /// <param name="x">The x coordinate, base64url.</param>
    /// <param name="y">The y coordinate, base64url.</param>
    /// <exception cref="ArgumentException">The curve is not supported or a coordinate is not base64url.</exception>
    public static string Ec(string crv, string x, string y)
    {
        if (crv is not ("P-256" or "P-384" or "P-521"))
        {
            throw new ArgumentException($"Unsupported EC curve '{crv}': use P-256, P-384 or P-521.", nameof(crv));
        }

        RequireBase64Url(x, nameof(x));
        RequireBase64Url(y, nameof(y));
        return Hash($$"""{"crv":"{{crv}}","kty":"EC","x":"{{x}}","y":"{{y}}"}""");
    }

    /// <summary>The thumbprint of a public JWK given as its members (at least RSA: e, kty, n; EC: crv, kty, x, y).</summary>
    /// <param name="member">Returns a member's string value, or null when the JWK lacks it.</param>
    /// <exception cref="ArgumentException">The key type is not RSA or EC, or a required member is missing or malformed.</exception>
    public static string Compute(Func<string, string?> member)
    {
        ArgumentNullException.ThrowIfNull(member);
        string Required(string name) => member(name) ?? throw new ArgumentException($"The JWK has no '{name}'.", nameof(member));
        return member("kty") switch
        {
            "RSA" => Rsa(Required("e"), Required("n")),
            "EC" => Ec(Required("crv"), Required("x"), Required("y")),
            var kty => throw new ArgumentException($"Unsupported key type '{kty}': use RSA or EC.", nameof(member)),
        };
    }

    // Values are interpolated into the canonical JSON unescaped, which is only sound for base64url text.
    private static void RequireBase64Url(string value, string name)
    {
        if (string.IsNullOrEmpty(value) || !Base64Url.IsValid(value))
        {
            throw new ArgumentException($"The JWK member '{name}' is not base64url.", name);
        }
    }

    private static string Hash(string canonical) => Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
}
