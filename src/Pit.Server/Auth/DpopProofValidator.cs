using System.Buffers.Text;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>
/// Checks a DPoP proof (RFC 9449 §4.3) against the request facts. The compact JWS is parsed here with the
/// platform's JSON reader and RSA/ECDsa rather than a JWT library so every failure maps to one precise error and
/// the per-request cost stays at one signature verification.
/// </summary>
internal sealed class DpopProofValidator(
    IOptions<PitAuthOptions> options, IDpopReplayCache replayCache, DpopReplayShares shares, DpopNonces nonces, TimeProvider time)
{
    private static readonly string[] PrivateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    private readonly DpopOptions _options = options.Value.DPoP;
    private readonly HashSet<string> _algorithms = new(options.Value.DPoP.Algorithms, StringComparer.Ordinal);

    // Imported proof public keys by thumbprint: importing costs more than verifying, and a client proves with the same
    // key on every request. Evicted keys are not disposed (a concurrent request may still verify with one); the
    // finalizer frees them.
    private readonly BoundedCache<string, AsymmetricAlgorithm> _keys = new(Math.Max(2, options.Value.DPoP.ProofKeyCacheCapacity), StringComparer.Ordinal);

    /// <summary>Imported proof keys held now (at most <see cref="DpopOptions.ProofKeyCacheCapacity"/>).</summary>
    internal int CachedKeyCount => _keys.Count;

    /// <summary>The accepted algorithms, space-separated, for <c>algs</c> in challenges.</summary>
    public string AlgorithmList => string.Join(' ', _options.Algorithms);

    public async ValueTask<DpopProofResult> ValidateAsync(DpopProofRequest request, CancellationToken cancellationToken)
    {
        var result = Check(request, out var jti, out var iat);
        if (!result.Succeeded)
        {
            return result;
        }

        if (request.RequireNonce && !nonces.IsValid(result.Nonce, request.NoncePurpose))
        {
            return DpopProofResult.Fail(DpopError.NonceRequired, "A fresh server nonce is required in the DPoP proof", nonces.Create(request.NoncePurpose));
        }

        var client = request.Client ?? result.Jkt!;
        var (granted, retryAfter) = shares.Check(client, iat, time.GetUtcNow().ToUnixTimeSeconds());
        if (!granted)
        {
            return DpopProofResult.Fail(DpopError.OverShare, "This client is sending more DPoP proofs than its share; retry later") with { RetryAfterSeconds = retryAfter };
        }

        var entry = new DpopReplayEntry(DpopReplayEntry.KeyOf(result.Jkt!, jti!), iat, iat + _options.MaxAgeSeconds + 1);
        if (!await replayCache.TryAddAsync(entry, cancellationToken))
        {
            return DpopProofResult.Fail(DpopError.Replayed, "The DPoP proof has already been used");
        }

        shares.Take(client, iat);
        return DpopProofResult.Valid(result.Jkt!);
    }

    // Synchronous part: everything but the replay cache. On success, Nonce carries the proof's nonce claim.
    private DpopProofResult Check(DpopProofRequest request, out string? jti, out long iat)
    {
        jti = null;
        iat = 0;
        if (request.ProofHeader.Count == 0 || string.IsNullOrEmpty(request.ProofHeader[0]))
        {
            return DpopProofResult.Fail(DpopError.Missing, "The DPoP proof is missing");
        }

        var proof = request.ProofHeader[0]!;
        if (request.ProofHeader.Count > 1 || proof.Contains(',', StringComparison.Ordinal))
        {
            return DpopProofResult.Fail(DpopError.NotExactlyOne, "Exactly one DPoP proof is required");
        }

        if (proof.Length > _options.MaxProofLength)
        {
            return DpopProofResult.Fail(DpopError.TooLong, "The DPoP proof is too long");
        }

        var firstDot = proof.IndexOf('.', StringComparison.Ordinal);
        var secondDot = firstDot < 0 ? -1 : proof.IndexOf('.', firstDot + 1);
        if (firstDot <= 0 || secondDot <= firstDot + 1 || secondDot == proof.Length - 1 || proof.IndexOf('.', secondDot + 1) >= 0)
        {
            return DpopProofResult.Fail(DpopError.Malformed, "The DPoP proof is not a compact JWS");
        }

        JsonDocument header, payload;
        byte[] signature;
        try
        {
            header = JsonDocument.Parse(Base64Url.DecodeFromChars(proof.AsSpan(0, firstDot)));
            payload = JsonDocument.Parse(Base64Url.DecodeFromChars(proof.AsSpan(firstDot + 1, secondDot - firstDot - 1)));
            signature = Base64Url.DecodeFromChars(proof.AsSpan(secondDot + 1));
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            return DpopProofResult.Fail(DpopError.Malformed, "The DPoP proof is not a compact JWS");
        }

        using (header)
        using (payload)
        {
            if (header.RootElement.ValueKind != JsonValueKind.Object || payload.RootElement.ValueKind != JsonValueKind.Object)
            {
                return DpopProofResult.Fail(DpopError.Malformed, "The DPoP proof is not a compact JWS");
            }

            var h = header.RootElement;
            if (!h.TryGetProperty("typ", out var typ) || typ.ValueKind != JsonValueKind.String
                || !string.Equals(typ.GetString(), "dpop+jwt", StringComparison.OrdinalIgnoreCase))
            {
                return DpopProofResult.Fail(DpopError.WrongType, "The DPoP proof typ must be dpop+jwt");
            }

            var alg = h.TryGetProperty("alg", out var algElement) && algElement.ValueKind == JsonValueKind.String ? algElement.GetString()! : "";
            if (!_algorithms.Contains(alg))
            {
                return DpopProofResult.Fail(DpopError.AlgorithmNotAllowed, "The DPoP proof alg is not supported");
            }

            if (!h.TryGetProperty("jwk", out var jwk) || jwk.ValueKind != JsonValueKind.Object)
            {
                return DpopProofResult.Fail(DpopError.BadKey, "The DPoP proof has no jwk");
            }

            foreach (var member in PrivateMembers)
            {
                if (jwk.TryGetProperty(member, out _))
                {
                    return DpopProofResult.Fail(DpopError.PrivateKeyMaterial, "The DPoP proof jwk must be a public key");
                }
            }

            var signed = Encoding.ASCII.GetBytes(proof, 0, secondDot);
            var keyCheck = VerifySignature(alg, jwk, signed, signature, out var jkt);
            if (!keyCheck.Succeeded)
            {
                return keyCheck;
            }

            var p = payload.RootElement;
            if (!TryGetString(p, "jti", out var jtiValue) || jtiValue.Length > 256)
            {
                return Missing("jti");
            }

            if (!TryGetString(p, "htm", out var htm))
            {
                return Missing("htm");
            }

            if (!TryGetString(p, "htu", out var htu))
            {
                return Missing("htu");
            }

            // NumericDate may carry fractional seconds (RFC 7519 §2); they are dropped.
            if (!p.TryGetProperty("iat", out var iatElement) || iatElement.ValueKind != JsonValueKind.Number
                || !(iatElement.TryGetInt64(out iat) || (iatElement.TryGetDouble(out var iatSeconds) && TryTruncate(iatSeconds, out iat))))
            {
                return Missing("iat");
            }

            string? ath = null;
            if (request.ExpectedAth is not null && !TryGetString(p, "ath", out ath))
            {
                return Missing("ath");
            }

            if (!string.Equals(htm, request.Method, StringComparison.Ordinal))
            {
                return DpopProofResult.Fail(DpopError.MethodMismatch, "The DPoP proof htm does not match the request method");
            }

            var normalisedHtu = HtuNormaliser.Normalise(htu);
            if (normalisedHtu is null || !string.Equals(normalisedHtu, HtuNormaliser.Normalise(request.ExpectedHtu), StringComparison.Ordinal))
            {
                return DpopProofResult.Fail(DpopError.UrlMismatch, "The DPoP proof htu does not match the request URL");
            }

            var now = time.GetUtcNow().ToUnixTimeSeconds();
            if (iat < now - _options.MaxAgeSeconds || iat > now + _options.MaxFutureSeconds)
            {
                return DpopProofResult.Fail(DpopError.IssuedAtOutOfWindow, "The DPoP proof iat is outside the accepted window");
            }

            // Compared as UTF-16 code units: a non-ASCII ath differs from every base64url string either way.
            if (request.ExpectedAth is not null
                && !CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes(request.ExpectedAth.AsSpan()), MemoryMarshal.AsBytes(ath.AsSpan())))
            {
                return DpopProofResult.Fail(DpopError.AccessTokenHashMismatch, "The DPoP proof ath does not match the access token");
            }

            if (request.ExpectedJkt is not null && !string.Equals(request.ExpectedJkt, jkt, StringComparison.Ordinal))
            {
                return DpopProofResult.Fail(DpopError.KeyNotBoundToToken, "The DPoP proof key does not match the access token's cnf.jkt");
            }

            jti = jtiValue;
            var nonce = TryGetString(p, "nonce", out var n) ? n : null;
            return new DpopProofResult(DpopError.None, null, jkt, nonce);
        }
    }

    private static bool TryTruncate(double seconds, out long value)
    {
        var valid = double.IsFinite(seconds) && seconds is > 0 and < 1e11;
        value = valid ? (long)seconds : 0;
        return valid;
    }

    private static DpopProofResult Missing(string claim) =>
        DpopProofResult.Fail(DpopError.MissingClaim, $"The DPoP proof lacks a valid {claim} claim");

    private static bool TryGetString(JsonElement element, string name, out string value)
    {
        value = "";
        if (element.TryGetProperty(name, out var property) && property.ValueKind == JsonValueKind.String && property.GetString() is { Length: > 0 } s)
        {
            value = s;
            return true;
        }

        return false;
    }

    private DpopProofResult VerifySignature(string alg, JsonElement jwk, byte[] signed, byte[] signature, out string jkt)
    {
        jkt = "";
        var badKey = DpopProofResult.Fail(DpopError.BadKey, "The DPoP proof jwk is not a usable public key for its alg");
        var hash = alg[2..] switch
        {
            "256" => HashAlgorithmName.SHA256,
            "384" => HashAlgorithmName.SHA384,
            _ => HashAlgorithmName.SHA512,
        };
        try
        {
            bool valid;
            if (alg[0] is 'R' or 'P')
            {
                if (!TryGetString(jwk, "kty", out var kty) || kty != "RSA" || !TryGetString(jwk, "n", out var n) || !TryGetString(jwk, "e", out var e))
                {
                    return badKey;
                }

                jkt = JwkThumbprint.Rsa(e, n);
                if (GetOrImport(jkt, () => ImportRsa(n, e)) is not RSA rsa)
                {
                    return badKey;
                }

                valid = rsa.VerifyData(signed, signature, hash, alg[0] == 'R' ? RSASignaturePadding.Pkcs1 : RSASignaturePadding.Pss);
            }
            else
            {
                var expectedCurve = alg[2..] switch { "256" => "P-256", "384" => "P-384", _ => "P-521" };
                if (!TryGetString(jwk, "kty", out var kty) || kty != "EC" || !TryGetString(jwk, "crv", out var crv) || crv != expectedCurve
                    || !TryGetString(jwk, "x", out var x) || !TryGetString(jwk, "y", out var y))
                {
                    return badKey;
                }

                jkt = JwkThumbprint.Ec(crv, x, y);
                if (GetOrImport(jkt, () => ImportEc(crv, x, y)) is not ECDsa ec)
                {
                    return badKey;
                }

                valid = ec.VerifyData(signed, signature, hash, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            }

            return valid ? DpopProofResult.Valid(jkt) : DpopProofResult.Fail(DpopError.BadSignature, "The DPoP proof signature is invalid");
        }
        catch (Exception ex) when (ex is CryptographicException or FormatException or ArgumentException)
        {
            return badKey;
        }
    }

    private AsymmetricAlgorithm? GetOrImport(string jkt, Func<AsymmetricAlgorithm?> import)
    {
        if (_keys.TryGetValue(jkt, out var key))
        {
            return key;
        }

        var imported = import();
        if (imported is not null)
        {
            _keys.Set(jkt, imported);
        }

        return imported;
    }

    private static RSA? ImportRsa(string n, string e)
    {
        var rsa = RSA.Create(JwkParameters.Rsa(name => name switch { "n" => n, "e" => e, _ => null }));
        if (rsa.KeySize >= 2048)
        {
            return rsa;
        }

        rsa.Dispose();
        return null;
    }

    private static ECDsa ImportEc(string crv, string x, string y)
    {
        return ECDsa.Create(JwkParameters.Ec(name => name switch { "crv" => crv, "x" => x, "y" => y, _ => null }));
    }
}
