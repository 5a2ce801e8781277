using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class DpopProofTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Proof_verifies_with_its_own_public_jwk_and_carries_the_dpop_header()
    {
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()), new ManualClock(Now));
        var proof = factory.CreateProof(HttpMethod.Get, new Uri("https://api.pit.test.nhn.no/v1/Patient"), "token");

        var header = Header(proof);
        Assert.Equal("dpop+jwt", header.GetProperty("typ").GetString());
        Assert.Equal("RS256", header.GetProperty("alg").GetString());
        var token = await TestKeys.VerifyAsync(proof, header.GetProperty("jwk").GetRawText(), "dpop+jwt");
        Assert.Equal("GET", token.GetPayloadValue<string>("htm"));
        Assert.Equal(Now.ToUnixTimeSeconds(), token.GetPayloadValue<long>("iat"));
    }

    [Fact]
    public void Proof_jwk_holds_only_public_members()
    {
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()));
        var jwk = Header(factory.CreateProof(HttpMethod.Post, new Uri("https://pit.example/v1/Patient"))).GetProperty("jwk");

        Assert.Equal(["e", "kty", "n"], jwk.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("https://api.pit.test.nhn.no/v1/Patient?_count=10&_sort=-_lastUpdated", "https://api.pit.test.nhn.no/v1/Patient")]
    [InlineData("https://api.pit.test.nhn.no/v1/Patient?cursor=abc#frag", "https://api.pit.test.nhn.no/v1/Patient")]
    [InlineData("http://localhost:5080/v1/Patient/123", "http://localhost:5080/v1/Patient/123")]
    [InlineData("HTTPS://API.PIT.TEST.NHN.NO:443/v1/Patient", "https://api.pit.test.nhn.no/v1/Patient")]
    public void Proof_htu_is_the_url_without_query_and_fragment(string url, string expected)
    {
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk()));
        var proof = new JsonWebToken(factory.CreateProof(HttpMethod.Get, new Uri(url), "token"));

        Assert.Equal(expected, proof.GetPayloadValue<string>("htu"));
    }

    [Fact]
    public void Proof_ath_is_base64url_sha256_of_the_access_token()
    {
        const string accessToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()));
        var proof = new JsonWebToken(factory.CreateProof(HttpMethod.Get, new Uri("https://pit.example/v1/Patient"), accessToken));

        var expected = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken)));
        Assert.Equal(expected, proof.GetPayloadValue<string>("ath"));
    }

    [Fact]
    public void Token_request_proof_has_no_ath_and_carries_the_nonce_when_given()
    {
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()));
        var proof = new JsonWebToken(factory.CreateProof(HttpMethod.Post, new Uri("https://helseid.example/connect/token"), null, "n-1"));

        Assert.False(proof.TryGetPayloadValue<string>("ath", out _));
        Assert.Equal("n-1", proof.GetPayloadValue<string>("nonce"));
        Assert.Equal("POST", proof.GetPayloadValue<string>("htm"));
    }

    [Fact]
    public void Every_proof_has_a_fresh_jti()
    {
        var factory = new DpopProofFactory(ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk()));
        var jtis = Enumerable.Range(0, 200)
            .Select(_ => new JsonWebToken(factory.CreateProof(HttpMethod.Get, new Uri("https://pit.example/v1/Patient"), "t")).GetPayloadValue<string>("jti"))
            .ToList();

        Assert.Equal(jtis.Count, jtis.Distinct(StringComparer.Ordinal).Count());
        Assert.All(jtis, jti => Assert.True(jti.Length >= 16));
    }

    [Fact]
    public async Task EC_proof_is_ES256_and_verifies()
    {
        var key = ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk());
        var proof = new DpopProofFactory(key).CreateProof(HttpMethod.Get, new Uri("https://pit.example/v1/Patient"), "t");

        var header = Header(proof);
        Assert.Equal("ES256", header.GetProperty("alg").GetString());
        Assert.Equal(["crv", "kty", "x", "y"], header.GetProperty("jwk").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        await TestKeys.VerifyAsync(proof, header.GetProperty("jwk").GetRawText(), "dpop+jwt");
    }

    internal static JsonElement Header(string jwt) =>
        JsonDocument.Parse(Base64UrlEncoder.Decode(jwt.Split('.')[0])).RootElement.Clone();
}
