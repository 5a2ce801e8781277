using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.Tokens;
using Pit.Security;

namespace Pit.Client;

/// <summary>
/// A client's private key, read from a JSON Web Key (RSA or EC), used to sign <c>private_key_jwt</c> client
/// assertions and DPoP proofs. Only the public members ever leave this object.
/// </summary>
public sealed class ClientSigningKey
{
    private static readonly string[] RsaPrivateMembers = ["d", "p", "q", "dp", "dq", "qi"];

    private ClientSigningKey(SecurityKey key, string algorithm, string? keyId, IReadOnlyDictionary<string, string> publicJwk)
    {
        SecurityKey = key;
        Algorithm = algorithm;
        KeyId = keyId;
        PublicJwk = publicJwk;
        Thumbprint = ComputeThumbprint(publicJwk);
        SigningCredentials = new SigningCredentials(key, algorithm);
    }

    /// <summary>The JWS algorithm used with this key (from the JWK's <c>alg</c>, else RS256 for RSA or ES256/384/512 by curve).</summary>
    public string Algorithm { get; }

    /// <summary>The JWK's <c>kid</c>, if it has one; sent in the client assertion header so the issuer can pick the key.</summary>
    public string? KeyId { get; }

    /// <summary>The public members of the key (RSA: kty, n, e; EC: kty, crv, x, y), as placed in a DPoP proof's <c>jwk</c> header.</summary>
    public IReadOnlyDictionary<string, string> PublicJwk { get; }

    /// <summary>The RFC 7638 SHA-256 thumbprint of the public key, base64url: what a DPoP-bound token's <c>cnf.jkt</c> holds.</summary>
    public string Thumbprint { get; }

    internal SecurityKey SecurityKey { get; }

    internal SigningCredentials SigningCredentials { get; }

    /// <summary>Reads a private JWK from a file.</summary>
    /// <param name="path">Path to a JSON file holding one private JWK (RSA or EC).</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public static async Task<ClientSigningKey> FromFileAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var json = await File.ReadAllTextAsync(path, cancellationToken).ConfigureAwait(false);
        return FromJwk(json);
    }

    /// <summary>Parses a private JWK (RSA or EC) given as JSON.</summary>
    /// <param name="json">The JWK. Must contain the private part (<c>d</c>).</param>
    /// <exception cref="ArgumentException">The JSON is not a private RSA or EC key.</exception>
    public static ClientSigningKey FromJwk(string json)
    {
        ArgumentException.ThrowIfNullOrEmpty(json);
        if (json.TrimStart().StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            throw new ArgumentException(
                "This is a PEM key, but a JSON Web Key (JWK) is expected: give the key as a private JWK in JSON, the form HelseID's " +
                "self-service hands out (for the development client: dev/helseid-standin/dev-client.jwk.json, not the .pem beside it).",
                nameof(json));
        }

        JsonObject jwk;
        try
        {
            jwk = JsonNode.Parse(json) as JsonObject ?? throw new ArgumentException("The JWK must be a JSON object.", nameof(json));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"The JWK is not valid JSON: {e.Message}", nameof(json), e);
        }

        var kty = Member(jwk, "kty") ?? throw new ArgumentException("The JWK has no 'kty'.", nameof(json));
        var alg = Member(jwk, "alg");
        var kid = Member(jwk, "kid");
        return kty switch
        {
            "RSA" => FromRsa(jwk, alg, kid),
            "EC" => FromEc(jwk, alg, kid),
            _ => throw new ArgumentException($"Unsupported JWK key type '{kty}': use RSA or EC.", nameof(json)),
        };
    }

    /// <summary>Creates a signing key from an RSA key pair (for example a freshly generated one).</summary>
    /// <param name="rsa">An RSA key with its private part.</param>
    /// <param name="algorithm">RS256/384/512 or PS256/384/512.</param>
    /// <param name="keyId">Optional key id.</param>
    public static ClientSigningKey FromRsa(RSA rsa, string algorithm = SecurityAlgorithms.RsaSha256, string? keyId = null)
    {
        ArgumentNullException.ThrowIfNull(rsa);
        var parameters = rsa.ExportParameters(includePrivateParameters: true);
        var publicJwk = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["e"] = Base64UrlEncoder.Encode(parameters.Exponent!),
            ["kty"] = "RSA",
            ["n"] = Base64UrlEncoder.Encode(parameters.Modulus!),
        };
        return new ClientSigningKey(new RsaSecurityKey(parameters) { KeyId = keyId }, algorithm, keyId, publicJwk);
    }

    /// <summary>Creates a signing key from an EC key pair (P-256, P-384 or P-521).</summary>
    /// <param name="ecdsa">An EC key with its private part.</param>
    /// <param name="keyId">Optional key id.</param>
    public static ClientSigningKey FromECDsa(ECDsa ecdsa, string? keyId = null)
    {
        ArgumentNullException.ThrowIfNull(ecdsa);
        var parameters = ecdsa.ExportParameters(includePrivateParameters: true);
        var (crv, alg) = CurveOf(parameters.Curve);
        var publicJwk = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["crv"] = crv,
            ["kty"] = "EC",
            ["x"] = Base64UrlEncoder.Encode(parameters.Q.X!),
            ["y"] = Base64UrlEncoder.Encode(parameters.Q.Y!),
        };
        return new ClientSigningKey(new ECDsaSecurityKey(ECDsa.Create(parameters)) { KeyId = keyId }, alg, keyId, publicJwk);
    }

    /// <summary>
    /// The RFC 7638 thumbprint of a public JWK: SHA-256 over the required members in lexicographic order, without
    /// whitespace, base64url-encoded.
    /// </summary>
    /// <param name="publicJwk">At least the required members (RSA: e, kty, n; EC: crv, kty, x, y).</param>
    public static string ComputeThumbprint(IReadOnlyDictionary<string, string> publicJwk)
    {
        ArgumentNullException.ThrowIfNull(publicJwk);
        return JwkThumbprint.Compute(publicJwk.GetValueOrDefault);
    }

    private static ClientSigningKey FromRsa(JsonObject jwk, string? alg, string? kid)
    {
        if (RsaPrivateMembers.Any(m => Member(jwk, m) is null))
        {
            throw new ArgumentException("The RSA JWK lacks its private part (d, p, q, dp, dq, qi): a client needs its private key.");
        }

        var parameters = Parse(jwk, JwkParameters.Rsa);
        using var rsa = RSA.Create();
        try
        {
            rsa.ImportParameters(parameters);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"The RSA JWK is not a valid key: {e.Message}", e);
        }

        var algorithm = alg ?? SecurityAlgorithms.RsaSha256;
        if (!algorithm.StartsWith("RS", StringComparison.Ordinal) && !algorithm.StartsWith("PS", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Algorithm '{algorithm}' does not fit an RSA key.");
        }

        return FromRsa(rsa, algorithm, kid);
    }

    private static ClientSigningKey FromEc(JsonObject jwk, string? alg, string? kid)
    {
        if (Member(jwk, "d") is null)
        {
            throw new ArgumentException("The EC JWK lacks its private part (d): a client needs its private key.");
        }

        if (Member(jwk, "x") is null || Member(jwk, "y") is null)
        {
            throw new ArgumentException("The EC JWK lacks its public part (x, y).");
        }

        var parameters = Parse(jwk, JwkParameters.Ec);
        ECDsa ecdsa;
        try
        {
            ecdsa = ECDsa.Create(parameters);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"The EC JWK is not a valid key: {e.Message}", e);
        }

        using (ecdsa)
        {
            var key = FromECDsa(ecdsa, kid);
            if (alg is not null && !string.Equals(alg, key.Algorithm, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Algorithm '{alg}' does not fit curve {Member(jwk, "crv")}.");
            }

            return key;
        }
    }

    private static (string Crv, string Alg) CurveOf(ECCurve curve) => curve.Oid?.FriendlyName switch
    {
        "nistP256" or "ECDSA_P256" => ("P-256", SecurityAlgorithms.EcdsaSha256),
        "nistP384" or "ECDSA_P384" => ("P-384", SecurityAlgorithms.EcdsaSha384),
        "nistP521" or "ECDSA_P521" => ("P-521", SecurityAlgorithms.EcdsaSha512),
        _ => curve.Oid?.Value switch
        {
            "1.2.840.10045.3.1.7" => ("P-256", SecurityAlgorithms.EcdsaSha256),
            "1.3.132.0.34" => ("P-384", SecurityAlgorithms.EcdsaSha384),
            "1.3.132.0.35" => ("P-521", SecurityAlgorithms.EcdsaSha512),
            _ => throw new ArgumentException("Unsupported EC curve: use P-256, P-384 or P-521."),
        },
    };

    private static string? Member(JsonObject jwk, string name) =>
        jwk.TryGetPropertyValue(name, out var node) && node is JsonValue value && value.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;

    private static T Parse<T>(JsonObject jwk, Func<Func<string, string?>, T> read)
    {
        try
        {
            return read(name => Member(jwk, name));
        }
        catch (FormatException e)
        {
            throw new ArgumentException("A JWK member is not base64url.", e);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{PublicJwk["kty"]} key {Thumbprint} ({Algorithm})";
}
