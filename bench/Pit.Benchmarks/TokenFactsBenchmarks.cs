using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.HelseIdStandIn;
using Pit.Server.Auth;
using Pit.TestSupport;

namespace Pit.Benchmarks;

/// <summary>
/// What the DPoP check derives from the access token on each request (cnf.jkt, the replay-share key, the ath hash):
/// derived anew, as every request did before, against kept with the cached token (<see cref="AccessTokenFacts"/>).
/// </summary>
[MemoryDiagnoser]
public class TokenFactsBenchmarks
{
    private JsonWebToken _token = null!;

    [GlobalSetup]
    public void Setup()
    {
        var standIn = new StandInIssuer(
            Options.Create(new StandInOptions { Issuer = "https://helseid-standin.local" }), new ServiceCollection().BuildServiceProvider(), TimeProvider.System);
        using var key = DpopKey.CreateEcP256();
        _token = new JsonWebToken(AccessTokenMinter.ForStandIn(standIn).Mint(new AccessTokenSpec { Jkt = key.Thumbprint }));
        AccessTokenFacts.Of(_token);
    }

    [Benchmark(Baseline = true, Description = "token facts derived per request (cnf JSON, share key, SHA-256)")]
    public string? Derived() => AccessTokenFacts.Derive(_token).Jkt;

    [Benchmark(Description = "token facts kept with the cached token")]
    public string? Cached() => AccessTokenFacts.Of(_token).Jkt;
}
