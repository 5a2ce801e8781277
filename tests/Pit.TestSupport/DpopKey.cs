using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pit.Security;

namespace Pit.TestSupport;

/// <summary>A real asymmetric key pair that signs DPoP proofs and client assertions (RSA or EC P-256).</summary>
public sealed class DpopKey : IDisposable
{
    private readonly RSA? _rsa;
    private readonly ECDsa? _ec;

    private DpopKey(RSA? rsa, ECDsa? ec, string algorithm)
    {
        _rsa = rsa;
        _ec = ec;
        Algorithm = algorithm;
        PublicJwk = BuildPublicJwk(includePrivate: false);
        Thumbprint = ComputeThumbprint(PublicJwk);
    }

    /// <summary>The JWS algorithm this key signs with.</summary>
    public string Algorithm { get; }

    /// <summary>The public JWK members.</summary>
    public JsonObject PublicJwk { get; }

    /// <summary>RFC 7638 SHA-256 thumbprint, base64url: the <c>cnf.jkt</c> a token bound to this key carries.</summary>
    public string Thumbprint { get; }

    /// <summary>A new RSA key (RS256/384/512 or PS256/384/512).</summary>
    public static DpopKey CreateRsa(string algorithm = "RS256", int keySize = 2048) => new(RSA.Create(keySize), null, algorithm);

    /// <summary>A new EC P-256 key (ES256).</summary>
    public static DpopKey CreateEcP256() => new(null, ECDsa.Create(ECCurve.NamedCurves.nistP256), "ES256");

    /// <summary>Loads a private JWK (RSA or EC P-256), e.g. the development client's key file.</summary>
    public static DpopKey FromPrivateJwk(string json, string? algorithm = null)
    {
        var jwk = JsonNode.Parse(json)!.AsObject();
        string? Member(string name) => jwk[name]?.GetValue<string>();
        if (Member("kty") == "EC")
        {
            return new DpopKey(null, ECDsa.Create(JwkParameters.Ec(Member)), algorithm ?? "ES256");
        }

        var rsa = RSA.Create(JwkParameters.Rsa(Member));
        return new DpopKey(rsa, null, algorithm ?? jwk["alg"]?.GetValue<string>() ?? "RS256");
    }

    /// <summary>The private JWK members (for negative tests that leak them into a proof header).</summary>
    public JsonObject PrivateJwk() => BuildPublicJwk(includePrivate: true);

    /// <summary>
    /// A DPoP proof for <paramref name="method"/> on <paramref name="url"/> (query and fragment stripped for
    /// <c>htu</c>), with <c>ath</c> when <paramref name="accessToken"/> is given and <c>nonce</c> when given.
    /// <paramref name="options"/> bends it for negative tests.
    /// </summary>
    public string CreateProof(HttpMethod method, Uri url, string? accessToken, string? nonce = null, DpopProofOptions? options = null)
    {
        options ??= DpopProofOptions.Default;
        var header = new JsonObject();
        if (options.Type is not null)
        {
            header["typ"] = options.Type;
        }

        header["alg"] = options.HeaderAlgorithm ?? Algorithm;
        if (options.IncludePrivateKey)
        {
            header["jwk"] = PrivateJwk();
        }
        else if (!options.OmitJwk)
        {
            header["jwk"] = (options.JwkFrom?.PublicJwk ?? PublicJwk).DeepClone();
        }

        var payload = new JsonObject
        {
            ["jti"] = options.Jti ?? Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16)),
            ["htm"] = options.Htm ?? method.Method,
            ["htu"] = options.Htu ?? url.GetLeftPart(UriPartial.Path),
            ["iat"] = (options.IssuedAt ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds(),
        };
        if (options.Ath is not null || accessToken is not null)
        {
            payload["ath"] = options.Ath ?? Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken!)));
        }

        if (nonce is not null)
        {
            payload["nonce"] = nonce;
        }

        foreach (var claim in options.OmitClaims)
        {
            payload.Remove(claim);
        }

        var jws = SignJwt(header, payload, options.SignWith);
        if (options.CorruptSignature)
        {
            var last = jws[^2] == 'A' ? 'B' : 'A';
            jws = string.Concat(jws.AsSpan(0, jws.Length - 2), last.ToString(), jws.AsSpan(jws.Length - 1));
        }

        return jws;
    }

    /// <summary>A <c>private_key_jwt</c> client assertion: <c>iss</c> = <c>sub</c> = client id, short <c>exp</c>, unique <c>jti</c>.</summary>
    public string CreateClientAssertion(string clientId, string audience, TimeSpan? lifetime = null)
    {
        var now = DateTimeOffset.UtcNow;
        var payload = new JsonObject
        {
            ["iss"] = clientId,
            ["sub"] = clientId,
            ["aud"] = audience,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["iat"] = now.ToUnixTimeSeconds(),
            ["nbf"] = now.ToUnixTimeSeconds(),
            ["exp"] = now.Add(lifetime ?? TimeSpan.FromSeconds(60)).ToUnixTimeSeconds(),
        };
        return SignJwt(new JsonObject { ["alg"] = Algorithm, ["typ"] = "client-authentication+jwt" }, payload);
    }

    /// <summary>Signs a compact JWS over the given header and payload (with <paramref name="signer"/>'s key if given).</summary>
    public string SignJwt(JsonObject header, JsonObject payload, DpopKey? signer = null)
    {
        var input = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." +
                    Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        var signature = (signer ?? this).Sign(Encoding.ASCII.GetBytes(input));
        return input + "." + Base64Url.EncodeToString(signature);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _rsa?.Dispose();
        _ec?.Dispose();
    }

    /// <summary>Signs <paramref name="data"/> (a JWS signing input) with this key's algorithm.</summary>
    public byte[] Sign(byte[] data)
    {
        var hash = Algorithm[2..] switch
        {
            "256" => HashAlgorithmName.SHA256,
            "384" => HashAlgorithmName.SHA384,
            _ => HashAlgorithmName.SHA512,
        };
        if (_rsa is not null)
        {
            return _rsa.SignData(data, hash, Algorithm[0] == 'P' ? RSASignaturePadding.Pss : RSASignaturePadding.Pkcs1);
        }

        return _ec!.SignData(data, hash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    private JsonObject BuildPublicJwk(bool includePrivate)
    {
        if (_rsa is not null)
        {
            var p = _rsa.ExportParameters(includePrivate);
            var jwk = new JsonObject
            {
                ["kty"] = "RSA",
                ["e"] = Base64Url.EncodeToString(p.Exponent),
                ["n"] = Base64Url.EncodeToString(p.Modulus),
            };
            if (includePrivate)
            {
                jwk["d"] = Base64Url.EncodeToString(p.D);
                jwk["p"] = Base64Url.EncodeToString(p.P);
                jwk["q"] = Base64Url.EncodeToString(p.Q);
                jwk["dp"] = Base64Url.EncodeToString(p.DP);
                jwk["dq"] = Base64Url.EncodeToString(p.DQ);
                jwk["qi"] = Base64Url.EncodeToString(p.InverseQ);
            }

            return jwk;
        }

        var ec = _ec!.ExportParameters(includePrivate);
        var ecJwk = new JsonObject
        {
            ["kty"] = "EC",
            ["crv"] = "P-256",
            ["x"] = Base64Url.EncodeToString(ec.Q.X),
            ["y"] = Base64Url.EncodeToString(ec.Q.Y),
        };
        if (includePrivate)
        {
            ecJwk["d"] = Base64Url.EncodeToString(ec.D);
        }

        return ecJwk;
    }

    private static string ComputeThumbprint(JsonObject jwk) => JwkThumbprint.Compute(name => jwk[name]?.GetValue<string>());
}

/// <summary>Knobs that bend a DPoP proof for negative tests. The default makes a valid proof.</summary>
public sealed record DpopProofOptions
{
    /// <summary>A valid proof.</summary>
    public static readonly DpopProofOptions Default = new();

    /// <summary>Header <c>typ</c>; null omits it.</summary>
    public string? Type { get; init; } = "dpop+jwt";

    /// <summary>Header <c>alg</c> instead of the key's (the signature is still made with the key's algorithm).</summary>
    public string? HeaderAlgorithm { get; init; }

    /// <summary>Leave out the header <c>jwk</c>.</summary>
    public bool OmitJwk { get; init; }

    /// <summary>Put the private key members into the header <c>jwk</c>.</summary>
    public bool IncludePrivateKey { get; init; }

    /// <summary>Put this other key's public JWK in the header (the signature then does not verify).</summary>
    public DpopKey? JwkFrom { get; init; }

    /// <summary>Sign with this other key while the header carries ours.</summary>
    public DpopKey? SignWith { get; init; }

    /// <summary>Flip a bit of the signature.</summary>
    public bool CorruptSignature { get; init; }

    /// <summary>Fixed <c>jti</c> (replay tests).</summary>
    public string? Jti { get; init; }

    /// <summary><c>iat</c> instead of now.</summary>
    public DateTimeOffset? IssuedAt { get; init; }

    /// <summary><c>htm</c> instead of the request method.</summary>
    public string? Htm { get; init; }

    /// <summary><c>htu</c> instead of the request URL.</summary>
    public string? Htu { get; init; }

    /// <summary><c>ath</c> instead of the access token's hash.</summary>
    public string? Ath { get; init; }

    /// <summary>Payload claims to leave out (<c>jti</c>, <c>htm</c>, <c>htu</c>, <c>iat</c>, <c>ath</c>).</summary>
    public IReadOnlyCollection<string> OmitClaims { get; init; } = [];
}
