using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.Tokens;
using Pit.HelseIdStandIn;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>HelseID's rules for the access token itself; each refusal is a 401 <c>invalid_token</c>.</summary>
public sealed class AccessTokenTests(AuthServerFixture fixture) : IClassFixture<AuthServerFixture>, IDisposable
{
    private readonly AuthRequests _requests = new(fixture.Server);

    public void Dispose() => _requests.Dispose();

    private async Task<HttpResponseMessage> SendAsync(AccessTokenSpec spec)
    {
        var token = _requests.Token(spec with { Jkt = spec.Jkt ?? _requests.Key.Thumbprint });
        return await _requests.SendAsync(token, _requests.Proof(token));
    }

    [Fact]
    public async Task Expired_token_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddMinutes(-20) });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "expired");
    }

    [Fact]
    public async Task Token_expired_within_the_clock_leeway_is_accepted()
    {
        using var response = await SendAsync(new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddSeconds(-602) });
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Token_not_yet_valid_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec { NotBefore = DateTimeOffset.UtcNow.AddMinutes(2) });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "not yet valid");
    }

    [Fact]
    public async Task Token_signed_with_another_key_is_refused()
    {
        using var rsa = RSA.Create(2048);
        var wrongKey = new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = "not-the-stand-in" }, SecurityAlgorithms.RsaSha256);
        using var response = await SendAsync(new AccessTokenSpec { SigningCredentials = wrongKey });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "signature");
    }

    [Fact]
    public async Task Token_signed_with_an_algorithm_off_the_allow_list_is_refused()
    {
        var standIn = fixture.Server.Services.GetRequiredService<StandInIssuer>();
        using var response = await SendAsync(new AccessTokenSpec { SigningCredentials = new SigningCredentials(standIn.SigningKey, SecurityAlgorithms.RsaSha384) });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "alg");
    }

    [Fact]
    public async Task Token_from_another_issuer_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec { Issuer = "https://helseid-sts.test.nhn.no" });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "not issued for this API");
    }

    [Fact]
    public async Task Token_for_another_audience_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec { Audience = "nhn:other-api" });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "not issued for this API");
    }

    [Theory]
    [InlineData("dpop+jwt")]
    [InlineData("id_token+jwt")]
    public async Task Token_with_a_wrong_typ_is_refused(string typ)
    {
        using var response = await SendAsync(new AccessTokenSpec { TokenType = typ });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "typ");
    }

    [Fact]
    public async Task Token_with_typ_JWT_is_accepted()
    {
        using var response = await SendAsync(new AccessTokenSpec { TokenType = "JWT" });
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Token_without_exp_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec { OmitClaims = ["exp"] });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token");
    }

    [Fact]
    public async Task Token_without_cnf_jkt_is_refused_because_PIT_accepts_only_DPoP_bound_tokens()
    {
        using var response = await SendAsync(new AccessTokenSpec { OmitClaims = ["cnf"] });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "cnf.jkt");
    }

    [Fact]
    public async Task Token_whose_cnf_has_no_jkt_is_refused()
    {
        using var response = await SendAsync(new AccessTokenSpec
        {
            ExtraClaims = new Dictionary<string, JsonNode?> { ["cnf"] = new JsonObject { ["x5t#S256"] = "abc" } },
        });
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "cnf.jkt");
    }

    [Fact]
    public async Task Malformed_token_is_refused()
    {
        using var response = await _requests.SendAsync("not-a-jwt", _requests.Proof("not-a-jwt"));
        await AuthAssert.UnauthorizedAsync(response, "invalid_token");
    }

    [Fact]
    public async Task Empty_DPoP_authorization_is_refused()
    {
        using var response = await _requests.SendAsync("DPoP ", [_requests.Proof(null)]);
        await AuthAssert.UnauthorizedAsync(response, "invalid_token");
    }

    [Fact]
    public async Task Scope_as_a_space_separated_string_is_accepted()
    {
        using var response = await SendAsync(new AccessTokenSpec { ScopeAsString = true, Scopes = ["nhn:pit/api.write nhn:pit/api.read"] });
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Validated_token_is_cached_and_an_invalid_one_is_not()
    {
        var cache = fixture.Server.Services.GetRequiredService<Pit.Server.Auth.CachingAccessTokenHandler>();
        var before = cache.Count;
        var token = _requests.ValidToken();
        using (var response = await _requests.SendAsync(token, _requests.Proof(token)))
        {
            AuthAssert.PassedAuthentication(response);
        }

        Assert.True(cache.Count > before);
        var afterValid = cache.Count;
        using (var response = await SendAsync(new AccessTokenSpec { Audience = "nhn:other-api" }))
        {
            await AuthAssert.UnauthorizedAsync(response, "invalid_token");
        }

        Assert.Equal(afterValid, cache.Count);
    }

    [Fact]
    public async Task Cached_token_is_still_checked_against_a_fresh_proof_every_time()
    {
        var token = _requests.ValidToken();
        using var first = await _requests.SendAsync(token, _requests.Proof(token));
        AuthAssert.PassedAuthentication(first);
        using var other = DpopKey.CreateEcP256();
        using var second = await _requests.SendAsync(token, other.CreateProof(HttpMethod.Get, _requests.PatientUrl, token));
        await AuthAssert.UnauthorizedAsync(second, "invalid_dpop_proof", "cnf.jkt");
        using var third = await _requests.SendAsync(token, _requests.Proof(token));
        AuthAssert.PassedAuthentication(third);
    }
}
