using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class ServiceCollectionTests
{
    [Fact]
    public async Task AddPitClient_builds_a_typed_client_that_shares_one_cached_token()
    {
        var server = new FakePitServer();
        var key = ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk());
        var services = new ServiceCollection();
        services.AddPitClient(_ => new PitClientOptions
        {
            BaseAddress = new Uri(FakePitServer.BaseUrl),
            HelseId = HelseIdTokenClientTests.Options(key, TimeProvider.System),
            PrimaryHandler = server.Handler,
        });
        await using var provider = services.BuildServiceProvider();

        var first = provider.GetRequiredService<PitClient>();
        var second = provider.GetRequiredService<PitClient>();
        await first.SearchPagesAsync().ToListAsync();
        await second.SearchPagesAsync().ToListAsync();

        Assert.Single(server.Handler.Seen, r => r.Method == HttpMethod.Post && r.Url.Host == "helseid.example");
        var searches = server.Handler.Seen.Where(r => r.Url.Host == "pit.example").ToList();
        Assert.Equal(2, searches.Count);
        Assert.All(searches, s => Assert.Equal(key.Thumbprint, ClientSigningKey.ComputeThumbprint(
            DpopProofTests.Header(s.Dpop!).GetProperty("jwk").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!))));
        Assert.All(searches, s => Assert.Equal("https://pit.example/v1/Patient", new JsonWebToken(s.Dpop).GetPayloadValue<string>("htu")));
    }
}
