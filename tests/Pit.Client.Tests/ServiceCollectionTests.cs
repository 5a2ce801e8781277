using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests;

[Collection(EndToEndCollection.Name)]
public sealed class ServiceCollectionTests
{
    [Fact]
    public async Task AddPitClient_builds_typed_clients_that_share_one_cached_token_against_the_real_server()
    {
        await using var server = await TestServer.StartAsync();
        using var traffic = new RecordingHandler();
        var options = await RealPit.ClientOptions(server, traffic);
        var services = new ServiceCollection();
        services.AddPitClient(_ => options);
        await using var provider = services.BuildServiceProvider();

        var first = provider.GetRequiredService<PitClient>();
        var second = provider.GetRequiredService<PitClient>();
        var firstPages = await first.SearchPagesAsync().ToListAsync();
        var secondPages = await second.SearchPagesAsync().ToListAsync();

        Assert.NotSame(first, second);
        Assert.Single(firstPages);
        Assert.Single(secondPages);
        // The token endpoint is visited only before the first search (the stand-in asks for a DPoP nonce first), and
        // the second client sends the very token the first one got.
        var seen = traffic.Seen.ToList();
        var tokenRequests = seen.FindAll(r => r.Method == HttpMethod.Post && r.Url.AbsolutePath.EndsWith("/connect/token", StringComparison.Ordinal));
        var searches = seen.FindAll(r => r.Url.AbsolutePath == "/v1/Patient");
        Assert.NotEmpty(tokenRequests);
        Assert.True(seen.IndexOf(tokenRequests[^1]) < seen.IndexOf(searches[0]), "a token was fetched after the first search");
        Assert.Equal(2, searches.Count);
        Assert.Single(searches.Select(s => s.Authorization).Distinct());
        Assert.All(searches, s => Assert.Equal(options.HelseId.ClientKey.Thumbprint, ClientSigningKey.ComputeThumbprint(
            DpopProofTests.Header(s.Dpop!).GetProperty("jwk").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!))));
        Assert.All(searches, s => Assert.Equal(new Uri(server.BaseAddress, "v1/Patient").AbsoluteUri, new JsonWebToken(s.Dpop).GetPayloadValue<string>("htu")));
    }
}
