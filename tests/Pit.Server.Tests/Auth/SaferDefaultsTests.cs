using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>Defaults that refuse what is not clearly meant: extra audiences, untrusted proxies, a guessed public URL.</summary>
public sealed class SaferDefaultsTests(AuthServerFixture fixture) : IClassFixture<AuthServerFixture>, IDisposable
{
    private const string PatientQuery = "v1/Patient?_lastUpdated=ge2020-01-01T00:00Z";
    private readonly AuthRequests _requests = new(fixture.Server);

    public void Dispose() => _requests.Dispose();

    [Fact]
    public async Task Token_for_this_API_and_another_audience_is_refused_with_invalid_token()
    {
        var token = _requests.Token(new AccessTokenSpec
        {
            Jkt = _requests.Key.Thumbprint,
            ExtraClaims = new Dictionary<string, JsonNode?> { ["aud"] = new JsonArray("nhn:pit", "nhn:other-api") },
        });
        using var response = await _requests.SendAsync(token, _requests.Proof(token));
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "exactly one audience");
    }

    [Fact]
    public async Task Token_whose_only_audience_is_this_API_is_accepted()
    {
        var token = _requests.Token(new AccessTokenSpec
        {
            Jkt = _requests.Key.Thumbprint,
            ExtraClaims = new Dictionary<string, JsonNode?> { ["aud"] = new JsonArray("nhn:pit") },
        });
        using var response = await _requests.SendAsync(token, _requests.Proof(token));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Forwarded_host_from_loopback_is_not_trusted_by_default_so_a_proof_for_that_host_is_refused()
    {
        using var response = await SendForwardedAsync(fixture.Server, "evil.example", proofUrl: new Uri("http://evil.example/" + PatientQuery));
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "htu");
    }

    [Fact]
    public async Task Links_never_use_a_forwarded_host_from_an_untrusted_peer()
    {
        using var response = await SendForwardedAsync(fixture.Server, "evil.example", proofUrl: new Uri(fixture.Server.BaseAddress, PatientQuery));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains(fixture.Server.BaseAddress.Authority, body, StringComparison.Ordinal);
        Assert.DoesNotContain("evil.example", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forwarded_host_from_a_configured_proxy_network_is_trusted()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:KnownNetworks:0"] = "127.0.0.0/8" });
        using var response = await SendForwardedAsync(server, "pit.example.org", proofUrl: new Uri("http://pit.example.org/" + PatientQuery));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("http://pit.example.org/v1/Patient", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Production_without_a_public_base_url_refuses_to_start()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => StartProductionAsync(publicBaseUrl: null));
        Assert.Contains("Pit:PublicBaseUrl", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Production_with_a_public_base_url_starts()
    {
        await using var server = await StartProductionAsync(publicBaseUrl: "https://api.pit.test.nhn.no");
        Assert.NotNull(server.BaseAddress);
    }

    [Fact]
    public async Task Stand_in_refuses_an_environment_its_allow_list_does_not_name()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { ["environment"] = "Staging" }));
        Assert.Contains("Pit:Auth:StandIn:AllowedEnvironments", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stand_in_starts_in_an_environment_its_allow_list_names()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["environment"] = "Staging",
            ["Pit:Auth:StandIn:AllowedEnvironments:0"] = "Staging",
        });
        using var client = server.CreateClient();
        using var response = await client.GetAsync(PatientQuery);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Stand_in_never_starts_in_Production_even_when_named()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["environment"] = "Production",
            ["Pit:PublicBaseUrl"] = "https://api.pit.test.nhn.no",
            ["Pit:Auth:StandIn:AllowedEnvironments:0"] = "Production",
        }));
        Assert.Contains("Production", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_over_its_share_of_proofs_gets_429_with_Retry_After_and_another_client_is_unaffected()
    {
        // 1 proof/s per instance and a full share: 5 proofs per client per 5-second bucket.
        var now = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 5 * 5);
        var time = new FakeTimeProvider(now);
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Auth:DPoP:ReplayCacheProofsPerSecond"] = "1", ["Pit:Auth:DPoP:ReplayClientShare"] = "1" },
            configure: builder => builder.Services.AddSingleton<TimeProvider>(time));
        using var noisy = new AuthRequests(server);
        using var quiet = new AuthRequests(server);
        var noisyToken = noisy.Token(new AccessTokenSpec { Jkt = noisy.Key.Thumbprint, ClientId = "noisy" });
        var quietToken = quiet.Token(new AccessTokenSpec { Jkt = quiet.Key.Thumbprint, ClientId = "quiet" });
        var at = new DpopProofOptions { IssuedAt = now };

        for (var i = 0; i < 5; i++)
        {
            using var ok = await noisy.SendAsync(noisyToken, noisy.Proof(noisyToken, at));
            AuthAssert.PassedAuthentication(ok);
        }

        time.Advance(TimeSpan.FromSeconds(1));
        using var over = await noisy.SendAsync(noisyToken, noisy.Proof(noisyToken, at));
        Assert.Equal(HttpStatusCode.TooManyRequests, over.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(4), over.Headers.RetryAfter?.Delta);
        Assert.Equal("application/fhir+json", over.Content.Headers.ContentType?.MediaType);
        var outcome = JsonNode.Parse(await over.Content.ReadAsStringAsync())!;
        Assert.Equal("OperationOutcome", outcome["resourceType"]?.GetValue<string>());
        Assert.Equal("throttled", outcome["issue"]![0]!["code"]?.GetValue<string>());

        using var other = await quiet.SendAsync(quietToken, quiet.Proof(quietToken, at));
        AuthAssert.PassedAuthentication(other);
    }

    private static async Task<HttpResponseMessage> SendForwardedAsync(TestServer server, string forwardedHost, Uri proofUrl)
    {
        using var key = DpopKey.CreateEcP256();
        var token = server.TokenMinter.Mint(new AccessTokenSpec { Jkt = key.Thumbprint });
        using var http = server.CreateAnonymousClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.BaseAddress, PatientQuery));
        request.Headers.TryAddWithoutValidation("Authorization", "DPoP " + token);
        request.Headers.TryAddWithoutValidation("DPoP", key.CreateProof(HttpMethod.Get, proofUrl, token));
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", forwardedHost);
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "http");
        return await http.SendAsync(request);
    }

    private static Task<TestServer> StartProductionAsync(string? publicBaseUrl) =>
        TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["environment"] = "Production",
            ["Pit:Auth:StandIn:Enabled"] = "false",
            ["Pit:Auth:Authority"] = "https://helseid-sts.test.nhn.no",
            ["Pit:PublicBaseUrl"] = publicBaseUrl,
        });
}
