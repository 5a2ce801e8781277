using Microsoft.Extensions.Options;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Auth;

/// <summary>A bad setting stops start-up with a message that names its key.</summary>
public sealed class OptionsValidationTests
{
    [Theory]
    [InlineData("Pit:Auth:DPoP:NonceKey", "c2hvcnQ=")]
    [InlineData("Pit:Auth:DPoP:NonceKey", "not base64 at all!")]
    [InlineData("Pit:Auth:DPoP:Algorithms:0", "HS256")]
    [InlineData("Pit:Auth:DPoP:MaxAgeSeconds", "0")]
    [InlineData("Pit:Auth:DPoP:ReplayClientShare", "0")]
    [InlineData("Pit:Auth:DPoP:ReplayCacheProofsPerSecond", "0")]
    [InlineData("Pit:Auth:TokenCacheCapacity", "1")]
    [InlineData("Pit:Access:CrossOrganisationReaders:0", "974762502")]
    [InlineData("Pit:Access:CrossOrganisationReaders:0", "NHN")]
    [InlineData("Pit:KnownProxies:0", "proxy.local")]
    [InlineData("Pit:KnownNetworks:0", "10.0.0.0")]
    public async Task A_bad_value_fails_start_up_naming_its_key(string key, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));
        var name = key.EndsWith(":0", StringComparison.Ordinal) ? key[..^2] : key;
        Assert.Contains(name, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Valid_values_start()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Auth:DPoP:NonceKey"] = Convert.ToBase64String(new byte[32]),
            ["Pit:Access:CrossOrganisationReaders:0"] = TestServer.DefaultOrganisation,
            ["Pit:KnownProxies:0"] = "10.1.2.3",
            ["Pit:KnownNetworks:0"] = "10.0.0.0/8",
        });
        Assert.NotNull(server.BaseAddress);
    }
}
