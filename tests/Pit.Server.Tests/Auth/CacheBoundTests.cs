using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.Tokens;
using Pit.HelseIdStandIn;
using Pit.Server.Auth;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>Every cache clients can fill holds no more than its stated bound, however many distinct entries arrive.</summary>
public sealed class CacheBoundTests
{
    private static readonly Uri Url = new("https://api.pit.test.nhn.no/v1/Patient");

    [Fact]
    public async Task Validated_token_cache_filled_with_many_distinct_tokens_stays_within_its_capacity()
    {
        using var standIn = new StandInIssuer(
            Options.Create(new StandInOptions { Issuer = "https://helseid-standin.local" }), new ServiceCollection().BuildServiceProvider(), TimeProvider.System);
        var minter = AccessTokenMinter.ForStandIn(standIn);
        var handler = new CachingAccessTokenHandler(Options.Create(new PitAuthOptions { TokenCacheCapacity = 8 }), TimeProvider.System);
        var parameters = new TokenValidationParameters
        {
            ValidIssuer = standIn.Issuer,
            ValidAudience = "nhn:pit",
            IssuerSigningKey = standIn.PublicKey,
            ValidTypes = ["at+jwt"],
        };

        for (var i = 0; i < 40; i++)
        {
            var result = await handler.ValidateTokenAsync(minter.Mint(new AccessTokenSpec { Jkt = "jkt-" + i }), parameters);
            Assert.True(result.IsValid);
            Assert.True(handler.Count <= 8, $"{handler.Count} cached tokens after {i + 1}");
        }

        Assert.True(handler.Count > 0);
    }

    [Fact]
    public async Task Proof_key_cache_filled_with_many_distinct_keys_stays_within_its_capacity()
    {
        var options = Options.Create(new PitAuthOptions { DPoP = new DpopOptions { ProofKeyCacheCapacity = 4 } });
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var validator = new DpopProofValidator(
            options, new InMemoryDpopReplayCache(options), new DpopReplayShares(options, NullLogger<DpopReplayShares>.Instance), new DpopNonces(options, time), time);

        for (var i = 0; i < 20; i++)
        {
            using var key = DpopKey.CreateEcP256();
            var proof = key.CreateProof(HttpMethod.Get, Url, null, options: new DpopProofOptions { IssuedAt = time.GetUtcNow() });
            var result = await validator.ValidateAsync(new DpopProofRequest(new(proof), "GET", Url.ToString(), null, null, false, "api"), default);
            Assert.True(result.Succeeded, result.Error.ToString());
            Assert.True(validator.CachedKeyCount <= 4, $"{validator.CachedKeyCount} cached keys after {i + 1}");
        }
    }
}
