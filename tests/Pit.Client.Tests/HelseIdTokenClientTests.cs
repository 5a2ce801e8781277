using System.Net;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class HelseIdTokenClientTests
{
    private const string Issuer = "https://helseid.example";
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Token_request_answers_the_DPoP_nonce_challenge_once()
    {
        var key = ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk("client-key"));
        var stub = HelseIdStub(requireNonce: true);
        var tokens = new HelseIdTokenClient(new HttpClient(stub), Options(key, new ManualClock(Start)));

        var token = await tokens.GetAccessTokenAsync();

        Assert.Equal("access-1", token.Value);
        var tokenRequests = stub.Seen.Where(r => r.Method == HttpMethod.Post).ToList();
        Assert.Equal(2, tokenRequests.Count);
        var first = new JsonWebToken(tokenRequests[0].Dpop);
        var second = new JsonWebToken(tokenRequests[1].Dpop);
        Assert.False(first.TryGetPayloadValue<string>("nonce", out _));
        Assert.Equal("server-nonce", second.GetPayloadValue<string>("nonce"));
        Assert.NotEqual(first.GetPayloadValue<string>("jti"), second.GetPayloadValue<string>("jti"));
        Assert.Equal(Issuer + "/connect/token", second.GetPayloadValue<string>("htu"));
        await TestKeys.VerifyAsync(tokenRequests[1].Dpop!, JsonSerializer.Serialize(key.PublicJwk), "dpop+jwt");
    }

    [Fact]
    public async Task Client_assertion_is_a_private_key_jwt_for_the_issuer()
    {
        var key = ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk());
        var stub = HelseIdStub(requireNonce: false);
        var tokens = new HelseIdTokenClient(new HttpClient(stub), Options(key, new ManualClock(Start)));

        await tokens.GetAccessTokenAsync();

        var form = ParseForm(stub.Seen.Single(r => r.Method == HttpMethod.Post).Body!);
        Assert.Equal("client_credentials", form["grant_type"]);
        Assert.Equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", form["client_assertion_type"]);
        Assert.Equal("nhn:pit/api.read nhn:pit/api.write", form["scope"]);
        var assertion = await TestKeys.VerifyAsync(form["client_assertion"], JsonSerializer.Serialize(key.PublicJwk));
        Assert.Equal("my-client", assertion.Issuer);
        Assert.Equal("my-client", assertion.Subject);
        Assert.Equal([Issuer], assertion.Audiences);
        Assert.False(string.IsNullOrEmpty(assertion.Id));
        Assert.True(assertion.ValidTo - assertion.IssuedAt <= TimeSpan.FromSeconds(60));
        Assert.False(assertion.TryGetPayloadValue<object>("authorization_details", out _));
    }

    [Fact]
    public async Task Multi_tenant_clients_name_their_organisation_in_authorization_details()
    {
        var key = ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk());
        var stub = HelseIdStub(requireNonce: false);
        var options = Options(key, new ManualClock(Start));
        options.OrganisationNumber = "974762501";
        options.ChildOrganisationNumber = "987654325";
        var tokens = new HelseIdTokenClient(new HttpClient(stub), options);

        await tokens.GetAccessTokenAsync();

        var assertion = new JsonWebToken(ParseForm(stub.Seen.Single(r => r.Method == HttpMethod.Post).Body!)["client_assertion"]);
        var payload = JsonDocument.Parse(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Decode(assertion.EncodedPayload)).RootElement;
        var detail = payload.GetProperty("authorization_details")[0];
        Assert.Equal("helseid_authorization", detail.GetProperty("type").GetString());
        Assert.Equal("NO:ORGNR:974762501:987654325",
            detail.GetProperty("practitioner_role").GetProperty("organization").GetProperty("identifier").GetProperty("value").GetString());
    }

    [Fact]
    public async Task A_child_organisation_alone_is_sent_in_HelseIDs_single_tenant_sub_unit_form()
    {
        var stub = HelseIdStub(requireNonce: false);
        var options = Options(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()), new ManualClock(Start));
        options.ChildOrganisationNumber = "987654325";
        var tokens = new HelseIdTokenClient(new HttpClient(stub), options);

        await tokens.GetAccessTokenAsync();

        var assertion = new JsonWebToken(ParseForm(stub.Seen.Single(r => r.Method == HttpMethod.Post).Body!)["client_assertion"]);
        var payload = JsonDocument.Parse(Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Decode(assertion.EncodedPayload)).RootElement;
        var identifier = payload.GetProperty("authorization_details")[0].GetProperty("practitioner_role").GetProperty("organization").GetProperty("identifier");
        Assert.Equal("urn:oid:2.16.578.1.12.4.1.2.101", identifier.GetProperty("system").GetString());
        Assert.Equal("987654325", identifier.GetProperty("value").GetString());
    }

    [Fact]
    public async Task Token_is_cached_and_renewed_before_it_expires()
    {
        var clock = new ManualClock(Start);
        var stub = HelseIdStub(requireNonce: false);
        var tokens = new HelseIdTokenClient(new HttpClient(stub), Options(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()), clock));

        var first = await tokens.GetAccessTokenAsync();
        clock.Advance(TimeSpan.FromSeconds(500));
        var cached = await tokens.GetAccessTokenAsync();
        clock.Advance(TimeSpan.FromSeconds(45)); // 55 s left of 600: inside the 60 s renewal margin
        var renewed = await tokens.GetAccessTokenAsync();

        Assert.Same(first, cached);
        Assert.NotEqual(first.Value, renewed.Value);
        Assert.Equal(2, stub.Seen.Count(r => r.Method == HttpMethod.Post));
        Assert.Single(stub.Seen, r => r.Method == HttpMethod.Get); // discovery read once
    }

    [Fact]
    public async Task A_refusal_surfaces_the_OAuth_error()
    {
        var stub = new StubHttpHandler((request, _) => request.Method == HttpMethod.Get
            ? Discovery()
            : StubHttpHandler.Json(HttpStatusCode.BadRequest, """{"error":"invalid_client","error_description":"unknown key"}"""));
        var tokens = new HelseIdTokenClient(new HttpClient(stub), Options(ClientSigningKey.FromJwk(TestKeys.RsaPrivateJwk()), new ManualClock(Start)));

        var error = await Assert.ThrowsAsync<HelseIdTokenException>(() => tokens.GetAccessTokenAsync().AsTask());

        Assert.Equal("invalid_client", error.Error);
        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.Contains("unknown key", error.Message, StringComparison.Ordinal);
    }

    internal static HelseIdClientOptions Options(ClientSigningKey key, TimeProvider clock) => new()
    {
        Authority = new Uri(Issuer),
        ClientId = "my-client",
        ClientKey = key,
        TimeProvider = clock,
    };

    /// <summary>A HelseID look-alike: discovery, and a token endpoint that (optionally) asks for a nonce first.</summary>
    internal static StubHttpHandler HelseIdStub(bool requireNonce)
    {
        var issued = 0;
        return new StubHttpHandler((request, index) =>
        {
            if (request.Method == HttpMethod.Get)
            {
                return Discovery();
            }

            var proof = new JsonWebToken(request.Dpop);
            if (requireNonce && !proof.TryGetPayloadValue<string>("nonce", out _))
            {
                var challenge = StubHttpHandler.Json(HttpStatusCode.BadRequest, """{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}""");
                challenge.Headers.Add("DPoP-Nonce", "server-nonce");
                return challenge;
            }

            issued++;
            return StubHttpHandler.Json(HttpStatusCode.OK,
                $$"""{"access_token":"access-{{issued}}","token_type":"DPoP","expires_in":600,"scope":"nhn:pit/api.read nhn:pit/api.write"}""");
        });
    }

    private static HttpResponseMessage Discovery() => StubHttpHandler.Json(HttpStatusCode.OK,
        $$"""{"issuer":"{{Issuer}}","token_endpoint":"{{Issuer}}/connect/token","jwks_uri":"{{Issuer}}/.well-known/openid-configuration/jwks"}""");

    private static Dictionary<string, string> ParseForm(string body) => body.Split('&')
        .Select(pair => pair.Split('=', 2))
        .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => Uri.UnescapeDataString(p[1].Replace('+', ' ')));
}
