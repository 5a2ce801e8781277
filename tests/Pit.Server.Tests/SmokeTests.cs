using System.Net;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class SmokeTests
{
    [Fact]
    public async Task Server_starts_and_answers_on_loopback()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        var response = await client.GetAsync("v1/Patient");
        Assert.NotEqual(HttpStatusCode.NotFound, response.StatusCode);
    }
}
