using Microsoft.IdentityModel.Tokens;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class ClientSigningKeyTests
{
    [Fact]
    public void Thumbprint_matches_the_RFC_7638_example()
    {
        // RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
        var jwk = new Dictionary<string, string>
        {
            ["kty"] = "RSA",
            ["n"] = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            ["e"] = "AQAB",
        };

        Assert.Equal("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", ClientSigningKey.ComputeThumbprint(jwk));
    }

    [Theory]
    [InlineData("RSA")]
    [InlineData("EC")]
    public void Thumbprint_agrees_with_Microsoft_IdentityModel(string kty)
    {
        var json = kty == "RSA" ? TestKeys.RsaPrivateJwk() : TestKeys.EcPrivateJwk();
        var key = ClientSigningKey.FromJwk(json);

        var expected = Base64UrlEncoder.Encode(new JsonWebKey(json).ComputeJwkThumbprint());
        Assert.Equal(expected, key.Thumbprint);
    }

    [Fact]
    public void A_public_only_JWK_is_refused()
    {
        var key = ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk());
        var publicOnly = System.Text.Json.JsonSerializer.Serialize(key.PublicJwk);

        var error = Assert.Throws<ArgumentException>(() => ClientSigningKey.FromJwk(publicOnly));
        Assert.Contains("private", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_JWK_alg_and_kid_are_used()
    {
        var json = TestKeys.RsaPrivateJwk("k1").Replace("\"kty\"", "\"alg\":\"PS256\",\"kty\"", StringComparison.Ordinal);
        var key = ClientSigningKey.FromJwk(json);

        Assert.Equal("PS256", key.Algorithm);
        Assert.Equal("k1", key.KeyId);
    }
}
