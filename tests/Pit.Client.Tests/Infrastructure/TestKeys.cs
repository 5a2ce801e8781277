using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Pit.Client.Tests.Infrastructure;

/// <summary>Real keys for tests, and verification of what was signed with them.</summary>
internal static class TestKeys
{
    public static string RsaPrivateJwk(string? kid = "test-rsa")
    {
        using var rsa = RSA.Create(2048);
        var p = rsa.ExportParameters(true);
        var jwk = new Dictionary<string, string>
        {
            ["kty"] = "RSA",
            ["n"] = B(p.Modulus!),
            ["e"] = B(p.Exponent!),
            ["d"] = B(p.D!),
            ["p"] = B(p.P!),
            ["q"] = B(p.Q!),
            ["dp"] = B(p.DP!),
            ["dq"] = B(p.DQ!),
            ["qi"] = B(p.InverseQ!),
        };
        if (kid is not null)
        {
            jwk["kid"] = kid;
        }

        return JsonSerializer.Serialize(jwk);
    }

    public static string EcPrivateJwk()
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var p = ec.ExportParameters(true);
        return JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["kty"] = "EC",
            ["crv"] = "P-256",
            ["x"] = B(p.Q.X!),
            ["y"] = B(p.Q.Y!),
            ["d"] = B(p.D!),
        });
    }

    /// <summary>Validates a JWT's signature with the given public JWK (as JSON) and returns the parsed token.</summary>
    public static async Task<JsonWebToken> VerifyAsync(string jwt, string publicJwkJson, string? type = null)
    {
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(jwt, new TokenValidationParameters
        {
            IssuerSigningKey = new JsonWebKey(publicJwkJson),
            ValidateIssuer = false,
            ValidateAudience = false,
            ValidateLifetime = false,
            RequireExpirationTime = false,
            ValidTypes = type is null ? null : [type],
        });
        Assert.True(result.IsValid, result.Exception?.Message);
        return (JsonWebToken)result.SecurityToken;
    }

    private static string B(byte[] bytes) => Base64UrlEncoder.Encode(bytes);
}
