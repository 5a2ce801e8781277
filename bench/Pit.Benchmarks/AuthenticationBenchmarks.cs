using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.HelseIdStandIn;
using Pit.Server.Auth;
using Pit.TestSupport;

namespace Pit.Benchmarks;

/// <summary>
/// Per-request cost of authentication: DPoP proof validation (every request) and access-token validation, uncached
/// and served from the validated-token cache. Keys and tokens are real (stand-in issuer, RSA 2048 / EC P-256).
/// </summary>
[MemoryDiagnoser]
public class AuthenticationBenchmarks
{
    private static readonly Uri Url = new("https://api.pit.test.nhn.no/v1/Patient");

    private DpopProofValidator _validator = null!;
    private DpopProofRequest _es256Request;
    private DpopProofRequest _rs256Request;
    private JsonWebTokenHandler _uncached = null!;
    private CachingAccessTokenHandler _cached = null!;
    private TokenValidationParameters _parameters = null!;
    private string _token = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        var now = DateTimeOffset.UtcNow;
        var time = new FixedTime(now);
        // One client presents the same proof over and over: its share is set high enough never to run out.
        var options = Options.Create(new PitAuthOptions { DPoP = new DpopOptions { ReplayCacheProofsPerSecond = 1_000_000, ReplayClientShare = 1 } });
        var shares = new DpopReplayShares(options, NullLogger<DpopReplayShares>.Instance);
        _validator = new DpopProofValidator(options, new AcceptingReplayCache(), shares, new DpopNonces(options, time), time);

        var standIn = new StandInIssuer(
            Options.Create(new StandInOptions { Issuer = "https://helseid-standin.local" }), new ServiceCollection().BuildServiceProvider(), TimeProvider.System);
        using var ec = DpopKey.CreateEcP256();
        using var rsa = DpopKey.CreateRsa();
        _token = AccessTokenMinter.ForStandIn(standIn).Mint(new AccessTokenSpec { Jkt = ec.Thumbprint });
        _es256Request = new DpopProofRequest(ec.CreateProof(HttpMethod.Get, Url, _token), "GET", Url.ToString(), AccessTokenFacts.AthOf(_token), ec.Thumbprint, false, "api");
        _rs256Request = new DpopProofRequest(rsa.CreateProof(HttpMethod.Get, Url, _token), "GET", Url.ToString(), AccessTokenFacts.AthOf(_token), rsa.Thumbprint, false, "api");

        _parameters = new TokenValidationParameters
        {
            ValidIssuer = standIn.Issuer,
            ValidAudience = "nhn:pit",
            IssuerSigningKey = standIn.PublicKey,
            ValidTypes = ["at+jwt", "JWT"],
            ValidAlgorithms = ["RS256"],
            ClockSkew = TimeSpan.FromSeconds(5),
        };
        _uncached = new JsonWebTokenHandler { MapInboundClaims = false };
        _cached = new CachingAccessTokenHandler(options, TimeProvider.System) { MapInboundClaims = false };
        if (!(await _uncached.ValidateTokenAsync(_token, _parameters)).IsValid || !(await _cached.ValidateTokenAsync(_token, _parameters)).IsValid
            || !(await _validator.ValidateAsync(_es256Request, default)).Succeeded || !(await _validator.ValidateAsync(_rs256Request, default)).Succeeded)
        {
            throw new InvalidOperationException("benchmark inputs do not validate");
        }
    }

    [Benchmark(Description = "DPoP proof ES256 (P-256)")]
    public async Task<bool> ProofEs256() => (await _validator.ValidateAsync(_es256Request, default)).Succeeded;

    [Benchmark(Description = "DPoP proof RS256 (2048)")]
    public async Task<bool> ProofRs256() => (await _validator.ValidateAsync(_rs256Request, default)).Succeeded;

    [Benchmark(Description = "Access token RS256, uncached")]
    public async Task<bool> TokenUncached() => (await _uncached.ValidateTokenAsync(_token, _parameters)).IsValid;

    [Benchmark(Description = "Access token RS256, cached")]
    public async Task<bool> TokenCached() => (await _cached.ValidateTokenAsync(_token, _parameters)).IsValid;

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    // Proof benchmarks reuse one proof; the replay cache is measured on its own.
    private sealed class AcceptingReplayCache : IDpopReplayCache
    {
        public ValueTask<bool> TryAddAsync(DpopReplayEntry entry, CancellationToken cancellationToken) => ValueTask.FromResult(true);
    }
}
