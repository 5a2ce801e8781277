using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.Server.Auth;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>
/// The facts the DPoP check derives from an access token (cnf.jkt, replay-share key, ath) are derived once per token
/// and cached with it; they must stay those of that token and never let a proof of another key through.
/// </summary>
public sealed class AccessTokenFactsTests(AuthServerFixture fixture) : IClassFixture<AuthServerFixture>, IDisposable
{
    private readonly AuthRequests _requests = new(fixture.Server);

    public void Dispose() => _requests.Dispose();

    [Fact]
    public void The_facts_of_a_token_are_derived_once_and_are_those_of_that_token()
    {
        using var signing = RSA.Create(2048);
        var minter = new AccessTokenMinter(new SigningCredentials(new RsaSecurityKey(signing), SecurityAlgorithms.RsaSha256), "https://issuer.test", "nhn:pit");
        using var firstKey = DpopKey.CreateEcP256();
        using var secondKey = DpopKey.CreateEcP256();
        var first = minter.Mint(new AccessTokenSpec { Jkt = firstKey.Thumbprint, ClientId = "client-a", OrgnrParent = "974762501" });
        var second = minter.Mint(new AccessTokenSpec { Jkt = secondKey.Thumbprint, ClientId = "client-b", OrgnrParent = "974762501" });
        var firstToken = new JsonWebToken(first);

        var facts = AccessTokenFacts.Of(firstToken);
        var others = AccessTokenFacts.Of(new JsonWebToken(second));

        Assert.Same(facts, AccessTokenFacts.Of(firstToken));
        Assert.Equal(firstKey.Thumbprint, facts.Jkt);
        Assert.Equal("client-a|974762501", facts.ReplayShareKey);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(first))), facts.Ath);
        Assert.Equal(secondKey.Thumbprint, others.Jkt);
        Assert.Equal("client-b|974762501", others.ReplayShareKey);
        Assert.NotEqual(facts.Ath, others.Ath);
    }

    [Fact]
    public void A_token_without_cnf_has_no_key_to_bind_a_proof_to()
    {
        using var signing = RSA.Create(2048);
        var minter = new AccessTokenMinter(new SigningCredentials(new RsaSecurityKey(signing), SecurityAlgorithms.RsaSha256), "https://issuer.test", "nhn:pit");

        Assert.Null(AccessTokenFacts.Of(new JsonWebToken(minter.Mint(new AccessTokenSpec { Jkt = null }))).Jkt);
    }

    [Fact]
    public async Task A_cached_token_with_a_proof_of_another_key_is_still_refused()
    {
        using var other = DpopKey.CreateEcP256();
        var token = _requests.ValidToken();
        using (var first = await _requests.SendAsync(token, _requests.Proof(token)))
        {
            AuthAssert.PassedAuthentication(first);
        }

        using (var foreign = await _requests.SendAsync(token, other.CreateProof(HttpMethod.Get, _requests.PatientUrl, token)))
        {
            await AuthAssert.UnauthorizedAsync(foreign, "invalid_dpop_proof", "cnf.jkt");
        }

        using var again = await _requests.SendAsync(token, _requests.Proof(token));
        AuthAssert.PassedAuthentication(again);
    }

    [Fact]
    public async Task Two_cached_tokens_of_two_keys_each_pass_only_with_proofs_of_their_own_key_and_hash()
    {
        using var other = DpopKey.CreateRsa();
        var mine = _requests.ValidToken();
        var theirs = _requests.Token(new AccessTokenSpec { Jkt = other.Thumbprint });
        using (var a = await _requests.SendAsync(mine, _requests.Proof(mine)))
        using (var b = await _requests.SendAsync(theirs, other.CreateProof(HttpMethod.Get, _requests.PatientUrl, theirs)))
        {
            AuthAssert.PassedAuthentication(a);
            AuthAssert.PassedAuthentication(b);
        }

        using (var crossedKey = await _requests.SendAsync(theirs, _requests.Proof(theirs)))
        {
            await AuthAssert.UnauthorizedAsync(crossedKey, "invalid_dpop_proof", "cnf.jkt");
        }

        using var crossedHash = await _requests.SendAsync(mine, _requests.Proof(theirs));
        await AuthAssert.UnauthorizedAsync(crossedHash, "invalid_dpop_proof", "ath");
    }
}
