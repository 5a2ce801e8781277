using System.Buffers.Text;
using System.Text;
using System.Text.Json.Nodes;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>The RFC 9449 §4.3 checklist of issue 3, one refusal per item, over real HTTP.</summary>
public sealed class DpopProofTests(AuthServerFixture fixture) : IClassFixture<AuthServerFixture>, IDisposable
{
    private readonly AuthRequests _requests = new(fixture.Server);

    public void Dispose() => _requests.Dispose();

    [Fact]
    public async Task A_valid_token_and_proof_pass_authentication()
    {
        var token = _requests.ValidToken();
        using var response = await _requests.SendAsync(token, _requests.Proof(token));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Request_without_credentials_gets_a_DPoP_challenge_without_error()
    {
        using var response = await _requests.SendAsync(null, []);
        await AuthAssert.UnauthorizedAsync(response, error: null);
    }

    [Fact]
    public async Task Bearer_scheme_is_refused_even_with_a_valid_token()
    {
        var token = _requests.ValidToken();
        using var response = await _requests.SendAsync("Bearer " + token, [_requests.Proof(token)]);
        await AuthAssert.UnauthorizedAsync(response, "invalid_token", "Bearer");
    }

    [Fact]
    public async Task DPoP_scheme_name_is_case_insensitive()
    {
        var token = _requests.ValidToken();
        using var response = await _requests.SendAsync("dpop " + token, [_requests.Proof(token)]);
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Missing_DPoP_header_is_refused()
    {
        using var response = await _requests.SendAsync("DPoP " + _requests.ValidToken(), []);
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "missing");
    }

    [Fact]
    public async Task Two_DPoP_headers_are_refused()
    {
        var token = _requests.ValidToken();
        using var response = await _requests.SendAsync("DPoP " + token, [_requests.Proof(token), _requests.Proof(token)]);
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "Exactly one");
    }

    [Fact]
    public async Task Proof_that_is_not_a_compact_JWS_is_refused()
    {
        using var response = await _requests.SendAsync(_requests.ValidToken(), "not.a-jws");
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "compact JWS");
    }

    [Fact]
    public async Task Overlong_proof_is_refused()
    {
        var padding = new string('a', 9000);
        using var response = await _requests.SendAsync(_requests.ValidToken(), padding + "." + padding + "." + padding);
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "too long");
    }

    [Theory]
    [InlineData("JWT")]
    [InlineData("at+jwt")]
    [InlineData(null)]
    public async Task Proof_with_wrong_or_missing_typ_is_refused(string? typ)
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { Type = typ });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "typ");
    }

    [Fact]
    public async Task Typ_with_an_escaped_plus_is_compared_as_parsed_JSON()
    {
        var token = _requests.ValidToken();
        var header = $$"""{"typ":"dpop\u002Bjwt","alg":"ES256","jwk":{{_requests.Key.PublicJwk.ToJsonString()}}}""";
        var payload = new JsonObject
        {
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["htm"] = "GET",
            ["htu"] = _requests.PatientUrl.ToString(),
            ["iat"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["ath"] = Base64Url.EncodeToString(System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(token))),
        };

        // Signed over the literal header bytes, so the JWS carries "dpop\u002Bjwt" as HelseID's example does.
        var signingInput = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(header)) + "." +
                           Base64Url.EncodeToString(Encoding.UTF8.GetBytes(payload.ToJsonString()));
        var proof = signingInput + "." + Base64Url.EncodeToString(_requests.Key.Sign(Encoding.ASCII.GetBytes(signingInput)));
        using var response = await _requests.SendAsync(token, proof);
        AuthAssert.PassedAuthentication(response);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("HS256")]
    [InlineData("RS1")]
    public async Task Proof_with_an_algorithm_off_the_allow_list_is_refused(string alg)
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { HeaderAlgorithm = alg });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "alg");
    }

    [Fact]
    public async Task Proof_without_jwk_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { OmitJwk = true });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "jwk");
    }

    [Fact]
    public async Task Proof_whose_jwk_contains_private_key_material_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { IncludePrivateKey = true });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "public key");
    }

    [Fact]
    public async Task Proof_with_a_corrupted_signature_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { CorruptSignature = true });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "signature");
    }

    [Fact]
    public async Task Proof_signed_by_a_key_other_than_its_jwk_is_refused()
    {
        using var other = DpopKey.CreateEcP256();
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { SignWith = other });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "signature");
    }

    [Theory]
    [InlineData("jti")]
    [InlineData("htm")]
    [InlineData("htu")]
    [InlineData("iat")]
    [InlineData("ath")]
    public async Task Proof_missing_a_required_claim_is_refused(string claim)
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { OmitClaims = [claim] });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", claim);
    }

    [Fact]
    public async Task Proof_for_another_method_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { Htm = "POST" });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "htm");
    }

    [Theory]
    [InlineData("v1/Patient/other")]
    [InlineData("v1/Observation")]
    public async Task Proof_for_another_path_is_refused(string path)
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { Htu = new Uri(fixture.Server.BaseAddress, path).ToString() });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "htu");
    }

    [Fact]
    public async Task Proof_for_another_host_or_scheme_is_refused()
    {
        var port = fixture.Server.BaseAddress.Port;
        foreach (var htu in new[] { $"http://example.org:{port}/v1/Patient", $"https://127.0.0.1:{port}/v1/Patient" })
        {
            using var response = await _requests.SendWithProofAsync(new DpopProofOptions { Htu = htu });
            await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "htu");
        }
    }

    [Fact]
    public async Task Htu_differing_only_in_case_and_percent_encoding_of_unreserved_characters_is_accepted()
    {
        var htu = $"HTTP://127.0.0.1:{fixture.Server.BaseAddress.Port}/v1/%50atient";
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { Htu = htu });
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Request_with_a_query_is_accepted_with_a_proof_whose_htu_has_the_query_stripped()
    {
        var url = new Uri(fixture.Server.BaseAddress, "v1/Patient?_count=10&_sort=-_lastUpdated");
        var token = _requests.ValidToken();
        var proof = _requests.Proof(token, url: url);
        Assert.DoesNotContain("_count", Encoding.UTF8.GetString(Base64Url.DecodeFromChars(proof.Split('.')[1])), StringComparison.Ordinal);
        using var response = await _requests.SendAsync(token, proof, url: url);
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Proof_with_a_fractional_iat_is_accepted()
    {
        var token = _requests.ValidToken();
        var header = new JsonObject { ["typ"] = "dpop+jwt", ["alg"] = "ES256", ["jwk"] = _requests.Key.PublicJwk.DeepClone() };
        var payload = new JsonObject
        {
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["htm"] = "GET",
            ["htu"] = _requests.PatientUrl.ToString(),
            ["iat"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0,
            ["ath"] = Base64Url.EncodeToString(System.Security.Cryptography.SHA256.HashData(Encoding.ASCII.GetBytes(token))),
        };
        using var response = await _requests.SendAsync(token, _requests.Key.SignJwt(header, payload));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Proof_issued_too_long_ago_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { IssuedAt = DateTimeOffset.UtcNow.AddSeconds(-120) });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "iat");
    }

    [Fact]
    public async Task Proof_issued_in_the_future_is_refused()
    {
        using var response = await _requests.SendWithProofAsync(new DpopProofOptions { IssuedAt = DateTimeOffset.UtcNow.AddSeconds(60) });
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "iat");
    }

    [Fact]
    public async Task Proof_whose_ath_is_not_the_hash_of_the_access_token_is_refused()
    {
        var token = _requests.ValidToken();
        var otherToken = _requests.ValidToken();
        using var response = await _requests.SendAsync(token, _requests.Proof(otherToken));
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "ath");
    }

    [Fact]
    public async Task Proof_key_that_does_not_match_the_token_cnf_jkt_is_refused()
    {
        using var other = DpopKey.CreateRsa();
        var tokenForOtherKey = _requests.Token(new AccessTokenSpec { Jkt = other.Thumbprint });
        using var response = await _requests.SendAsync(tokenForOtherKey, _requests.Proof(tokenForOtherKey));
        await AuthAssert.UnauthorizedAsync(response, "invalid_dpop_proof", "cnf.jkt");
    }

    [Fact]
    public async Task Replayed_proof_is_refused()
    {
        var token = _requests.ValidToken();
        var proof = _requests.Proof(token);
        using var first = await _requests.SendAsync(token, proof);
        AuthAssert.PassedAuthentication(first);
        using var second = await _requests.SendAsync(token, proof);
        await AuthAssert.UnauthorizedAsync(second, "invalid_dpop_proof", "already been used");
    }

    [Fact]
    public async Task Same_proof_sent_concurrently_passes_at_most_once()
    {
        var token = _requests.ValidToken();
        var proof = _requests.Proof(token);
        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => _requests.SendAsync(token, proof)));
        try
        {
            Assert.Equal(1, responses.Count(r => r.StatusCode is not (System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden)));
            Assert.Equal(15, responses.Count(r => AuthAssert.Challenge(r).Contains("already been used", StringComparison.Ordinal)));
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    [Fact]
    public async Task Same_jti_from_a_different_key_is_not_a_replay()
    {
        using var other = DpopKey.CreateRsa("PS256");
        var jti = Guid.NewGuid().ToString("N");
        var token = _requests.ValidToken();
        using var first = await _requests.SendAsync(token, _requests.Proof(token, new DpopProofOptions { Jti = jti }));
        AuthAssert.PassedAuthentication(first);

        var otherToken = _requests.Token(new AccessTokenSpec { Jkt = other.Thumbprint });
        using var second = await _requests.SendAsync(otherToken, other.CreateProof(HttpMethod.Get, _requests.PatientUrl, otherToken, options: new DpopProofOptions { Jti = jti }));
        AuthAssert.PassedAuthentication(second);
    }

    [Theory]
    [InlineData("RS256")]
    [InlineData("RS512")]
    [InlineData("PS384")]
    public async Task RSA_proof_keys_are_accepted(string alg)
    {
        using var key = DpopKey.CreateRsa(alg);
        var token = _requests.Token(new AccessTokenSpec { Jkt = key.Thumbprint });
        using var response = await _requests.SendAsync(token, key.CreateProof(HttpMethod.Get, _requests.PatientUrl, token));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task DpopHttpHandler_client_passes_authentication_on_every_request()
    {
        using var client = fixture.Server.CreateClient();
        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync("v1/Patient?_count=5");
            AuthAssert.PassedAuthentication(response);
        }
    }
}

/// <summary>Behind a proxy the proof names the public URL: <c>Pit:PublicBaseUrl</c>, path base included.</summary>
public sealed class DpopPublicBaseUrlTests : IAsyncLifetime
{
    private const string PublicBase = "https://api.pit.test.nhn.no/pit";
    private Infrastructure.TestServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await Infrastructure.TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:PublicBaseUrl"] = PublicBase + "/" });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Htu_is_checked_against_the_configured_public_base_url_including_its_path_base()
    {
        using var requests = new AuthRequests(_server);
        var token = requests.ValidToken();
        using var accepted = await requests.SendAsync(token, requests.Proof(token, url: new Uri(PublicBase + "/v1/Patient?_count=2")));
        AuthAssert.PassedAuthentication(accepted);

        using var withoutPathBase = await requests.SendAsync(token, requests.Proof(token, url: new Uri("https://api.pit.test.nhn.no/v1/Patient")));
        await AuthAssert.UnauthorizedAsync(withoutPathBase, "invalid_dpop_proof", "htu");

        using var internalUrl = await requests.SendAsync(token, requests.Proof(token));
        await AuthAssert.UnauthorizedAsync(internalUrl, "invalid_dpop_proof", "htu");
    }
}
