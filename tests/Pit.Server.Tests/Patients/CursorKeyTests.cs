using System.Net;
using System.Security.Cryptography;
using Pit.Server.Storage;
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

    [Fact]
    public async Task Rotating_the_cursor_key_keeps_outstanding_cursors_valid_while_the_retired_key_is_cursorPrevious_and_refuses_them_with_400_after()
    {
        var oldKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var newKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var data = Directory.CreateTempSubdirectory("pit-cursor-rotation-").FullName;
        try
        {
            string sealedUnderOld;
            var before = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Secrets:cursor"] = oldKey }, data);
            using (var client = before.CreateClient())
            {
                for (var i = 0; i < 3; i++)
                {
                    await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
                }

                sealedUnderOld = PathAndQuery((await client.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK)).Link("next")!);
            }

            await before.StopAsync();

            string sealedUnderNew;
            var rotating = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Secrets:cursor"] = newKey, ["Pit:Secrets:cursorPrevious"] = oldKey }, data);
            using (var client = rotating.CreateClient())
            {
                var second = await client.GetJsonAsync(sealedUnderOld, HttpStatusCode.OK);
                Assert.Single(second.Resources());
                sealedUnderNew = PathAndQuery(second.Link("next")!);
            }

            await rotating.StopAsync();

            var after = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Secrets:cursor"] = newKey }, data);
            using (var client = after.CreateClient())
            {
                using var refused = await client.GetAsync(sealedUnderOld);
                Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
                var third = await client.GetJsonAsync(sealedUnderNew, HttpStatusCode.OK);
                Assert.Single(third.Resources());
                Assert.Null(third.Link("next"));
            }

            await after.StopAsync();
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static string PathAndQuery(string link) => new Uri(link).PathAndQuery;
}
