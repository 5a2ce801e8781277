using Pit.Server.Storage;
using System.Net;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class CursorKeyTests
{
    [Fact]
    public async Task Paged_search_works_again_after_the_cursor_key_failed_to_load_once()
    {
        await using var server = await TestServer.StartAsync(
            configure: b => b.Services.DecorateStore<ISharedSecretStore>(inner => new FailingSecretStore(inner) { ReadsToFail = 1 }));
        using var client = server.CreateClient();
        for (var i = 0; i < 3; i++)
        {
            await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        }

        // The first page needs the key for its next link; the store blinks on that first load.
        using (var failed = await client.GetAsync("v1/Patient?_count=1"))
        {
            Assert.True((int)failed.StatusCode >= 500, $"The blip fails that request; got {(int)failed.StatusCode}.");
        }

        var first = await client.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK);
        var second = await client.GetJsonAsync(first.Link("next")!, HttpStatusCode.OK);
        var third = await client.GetJsonAsync(second.Link("next")!, HttpStatusCode.OK);
        Assert.Equal(3, new[] { first, second, third }.SelectMany(b => b.Resources()).Select(p => (string)p["id"]!).Distinct().Count());
        Assert.Null(third.Link("next"));
    }
}
