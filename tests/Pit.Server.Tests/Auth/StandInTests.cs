using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.HelseIdStandIn;
using Pit.Server.Auth;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>The local HelseID stand-in: discovery, JWKS, token endpoint, and its guard against Production.</summary>
public sealed class StandInTests(StandInFixture fixture) : IClassFixture<StandInFixture>
{
    private const string ClientId = StandInFixture.ClientId;
    private const string ChildOrganisation = StandInFixture.ChildOrganisation;
    private readonly DpopKey _clientKey = fixture.ClientKey;
    private readonly TestServer _server = fixture.Server;

    private Uri Discovery => new(_server.BaseAddress, "helseid-standin/.well-known/openid-configuration");

    private StandInIssuer StandIn => _server.Services.GetRequiredService<StandInIssuer>();

    [Fact]
    public async Task Discovery_document_follows_HelseID_layout_under_the_issuer()
    {
        using var http = _server.CreateAnonymousClient();
        using var document = JsonDocument.Parse(await http.GetStringAsync(Discovery));
        var root = document.RootElement;
        var issuer = root.GetProperty("issuer").GetString()!;
        Assert.Equal(new Uri(_server.BaseAddress, "helseid-standin").ToString(), issuer);
        Assert.Equal(issuer + "/connect/token", root.GetProperty("token_endpoint").GetString());
        Assert.Equal(issuer + "/.well-known/openid-configuration/jwks", root.GetProperty("jwks_uri").GetString());
        Assert.Contains("ES256", root.GetProperty("dpop_signing_alg_values_supported").EnumerateArray().Select(e => e.GetString()));

        using var jwks = JsonDocument.Parse(await http.GetStringAsync(root.GetProperty("jwks_uri").GetString()));
        var key = Assert.Single(jwks.RootElement.GetProperty("keys").EnumerateArray());
        Assert.Equal(StandIn.KeyId, key.GetProperty("kid").GetString());
        Assert.False(key.TryGetProperty("d", out _));
    }

    [Fact]
    public async Task Token_request_without_a_nonce_gets_a_use_dpop_nonce_challenge()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        using var http = _server.CreateAnonymousClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, StandIn.TokenEndpoint)
        {
            Content = TokenForm(_clientKey.CreateClientAssertion(ClientId, StandIn.Issuer)),
        };
        request.Headers.Add("DPoP", dpopKey.CreateProof(HttpMethod.Post, new Uri(StandIn.TokenEndpoint), null));
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.True(response.Headers.TryGetValues("DPoP-Nonce", out var nonces) && nonces.Single().Length > 0);
        Assert.Equal("use_dpop_nonce", await ErrorAsync(response));
    }

    [Fact]
    public async Task Token_endpoint_issues_a_HelseID_shaped_DPoP_bound_token_that_the_API_accepts()
    {
        using var dpopKey = DpopKey.CreateRsa("PS256");
        var response = await StandInTokenClient.RequestTokenAsync(
            new Uri(StandIn.TokenEndpoint), StandIn.Issuer, ClientId, _clientKey, dpopKey, [AccessTokenMinter.ReadScope]);
        Assert.Equal("DPoP", response.TokenType);
        Assert.Equal(600, response.ExpiresIn);

        var token = new JsonWebToken(response.AccessToken);
        Assert.Equal("RS256", token.Alg);
        Assert.Equal("at+jwt", token.Typ);
        Assert.Equal(StandIn.KeyId, token.Kid);
        Assert.Equal(StandIn.Issuer, token.Issuer);
        Assert.Equal("nhn:pit", Assert.Single(token.Audiences));
        Assert.Equal(600, (token.ValidTo - token.IssuedAt).TotalSeconds);
        Assert.Equal([AccessTokenMinter.ReadScope], token.GetPayloadValue<string[]>("scope"));
        Assert.Equal(ClientId, token.GetPayloadValue<string>("client_id"));
        Assert.Equal("private_key_jwt", token.GetPayloadValue<string>("client_amr"));
        Assert.Equal(TestServer.OtherOrganisation, token.GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
        Assert.Equal(ChildOrganisation, token.GetPayloadValue<string>(HelseIdClaims.OrgnrChild));
        Assert.Equal("Stand-in test client", token.GetPayloadValue<string>(HelseIdClaims.ClientName));
        Assert.False(string.IsNullOrEmpty(token.Id));
        using (var cnf = JsonDocument.Parse(token.GetClaim("cnf").Value))
        {
            Assert.Equal(dpopKey.Thumbprint, cnf.RootElement.GetProperty("jkt").GetString());
        }

        using var api = new HttpClient(new DpopHttpHandler(dpopKey, response.AccessToken) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = _server.BaseAddress };
        using var apiResponse = await api.GetAsync("v1/Patient");
        AuthAssert.PassedAuthentication(apiResponse);
    }

    [Fact]
    public async Task Client_assertion_audience_may_be_the_token_endpoint()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        var (status, body) = await StandInTokenClient.SendAsync(
            new Uri(StandIn.TokenEndpoint), ClientId, _clientKey.CreateClientAssertion(ClientId, StandIn.TokenEndpoint), dpopKey, [AccessTokenMinter.WriteScope]);
        Assert.True(status == HttpStatusCode.OK, body);
    }

    [Fact]
    public async Task Development_client_key_file_gets_a_token_from_the_stand_in()
    {
        var keyFile = Path.Combine(ServerCommandLine.RepositoryRoot(), "dev", "helseid-standin", "dev-client.jwk.json");
        using var devKey = DpopKey.FromPrivateJwk(await File.ReadAllTextAsync(keyFile));
        using var dpopKey = DpopKey.CreateEcP256();
        var response = await StandInTokenClient.RequestTokenAsync(
            new Uri(StandIn.TokenEndpoint), StandIn.Issuer, "pit-dev-client", devKey, dpopKey, [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope]);
        Assert.Equal(TestServer.DefaultOrganisation, new JsonWebToken(response.AccessToken).GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
    }

    [Fact]
    public async Task Client_assertion_signed_with_an_unregistered_key_is_refused()
    {
        using var impostor = DpopKey.CreateRsa();
        using var dpopKey = DpopKey.CreateEcP256();
        var (status, body) = await StandInTokenClient.SendAsync(
            new Uri(StandIn.TokenEndpoint), ClientId, impostor.CreateClientAssertion(ClientId, StandIn.Issuer), dpopKey, [AccessTokenMinter.ReadScope]);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_client", Error(body));
    }

    [Fact]
    public async Task Client_assertion_for_another_audience_is_refused()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        var (status, body) = await StandInTokenClient.SendAsync(
            new Uri(StandIn.TokenEndpoint), ClientId, _clientKey.CreateClientAssertion(ClientId, "https://helseid-sts.nhn.no"), dpopKey, [AccessTokenMinter.ReadScope]);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_client", Error(body));
    }

    [Fact]
    public async Task Replayed_client_assertion_is_refused()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        var assertion = _clientKey.CreateClientAssertion(ClientId, StandIn.Issuer);
        var first = await StandInTokenClient.SendAsync(new Uri(StandIn.TokenEndpoint), ClientId, assertion, dpopKey, [AccessTokenMinter.ReadScope]);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        var second = await StandInTokenClient.SendAsync(new Uri(StandIn.TokenEndpoint), ClientId, assertion, dpopKey, [AccessTokenMinter.ReadScope]);
        Assert.Equal(HttpStatusCode.BadRequest, second.Status);
        Assert.Equal("invalid_client", Error(second.Body));
    }

    [Fact]
    public async Task Scope_not_registered_for_the_client_is_refused()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        var (status, body) = await StandInTokenClient.SendAsync(
            new Uri(StandIn.TokenEndpoint), ClientId, _clientKey.CreateClientAssertion(ClientId, StandIn.Issuer), dpopKey, ["nhn:other/api.admin"]);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_scope", Error(body));
    }

    [Fact]
    public async Task Token_request_with_an_invalid_proof_is_refused()
    {
        using var dpopKey = DpopKey.CreateEcP256();
        using var http = _server.CreateAnonymousClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, StandIn.TokenEndpoint)
        {
            Content = TokenForm(_clientKey.CreateClientAssertion(ClientId, StandIn.Issuer)),
        };
        request.Headers.Add("DPoP", dpopKey.CreateProof(HttpMethod.Post, new Uri(StandIn.TokenEndpoint), null, options: new DpopProofOptions { CorruptSignature = true }));
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_dpop_proof", await ErrorAsync(response));
    }

    [Fact]
    public void Stand_in_refuses_to_start_in_Production()
    {
        var error = Assert.Throws<OptionsValidationException>(() =>
            PitApp.Create(["--environment=Production", "--urls=http://127.0.0.1:0", "--Pit:Auth:StandIn:Enabled=true"]));
        Assert.Contains("Production", error.Message, StringComparison.Ordinal);
        Assert.Contains("Pit:Auth:StandIn:Enabled", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_without_authority_or_stand_in_refuses_to_start()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Auth:StandIn:Enabled"] = "false" }));
        Assert.Contains("Pit:Auth:Authority is required", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plain_HTTP_metadata_is_refused_for_a_non_loopback_authority()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Auth:StandIn:Enabled"] = "false",
            ["Pit:Auth:Authority"] = "http://helseid.example.org",
            ["Pit:Auth:RequireHttpsMetadata"] = "false",
        }));
        Assert.Contains("loopback", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_against_real_HelseID_test_starts_without_the_stand_in_and_challenges()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Auth:StandIn:Enabled"] = "false",
            ["Pit:Auth:Authority"] = "https://helseid-sts.test.nhn.no",
            ["Pit:Auth:RequireHttpsMetadata"] = "true",
        });
        using var http = server.CreateAnonymousClient();
        using var response = await http.GetAsync("v1/Patient");
        await AuthAssert.UnauthorizedAsync(response, error: null);
        using var standIn = await http.GetAsync("helseid-standin/.well-known/openid-configuration");
        Assert.Equal(HttpStatusCode.NotFound, standIn.StatusCode);
    }

    private static FormUrlEncodedContent TokenForm(string assertion) => new(new Dictionary<string, string>
    {
        ["grant_type"] = "client_credentials",
        ["client_assertion_type"] = StandInTokenClient.JwtBearerAssertionType,
        ["client_assertion"] = assertion,
        ["scope"] = AccessTokenMinter.ReadScope,
    });

    private static async Task<string?> ErrorAsync(HttpResponseMessage response) => Error(await response.Content.ReadAsStringAsync());

    private static string? Error(string body)
    {
        using var document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("error").GetString();
    }
}

/// <summary>One server with a registered test client (and the development client from appsettings.Development.json).</summary>
public sealed class StandInFixture : IAsyncLifetime
{
    public const string ClientId = "pit-standin-test-client";
    public const string ChildOrganisation = "987654325";

    public DpopKey ClientKey { get; } = DpopKey.CreateRsa();

    public TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Index 5 keeps the development client of appsettings.Development.json (index 0) registered too.
        const string prefix = "Pit:Auth:StandIn:Clients:5:";
        Server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            [prefix + "ClientId"] = ClientId,
            [prefix + "ClientName"] = "Stand-in test client",
            [prefix + "OrgnrParent"] = TestServer.OtherOrganisation,
            [prefix + "OrgnrChild"] = ChildOrganisation,
            [prefix + "Scopes:0"] = AccessTokenMinter.ReadScope,
            [prefix + "Scopes:1"] = AccessTokenMinter.WriteScope,
            [prefix + "PublicJwk:kty"] = "RSA",
            [prefix + "PublicJwk:n"] = ClientKey.PublicJwk["n"]!.GetValue<string>(),
            [prefix + "PublicJwk:e"] = ClientKey.PublicJwk["e"]!.GetValue<string>(),
        });
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        ClientKey.Dispose();
    }
}
