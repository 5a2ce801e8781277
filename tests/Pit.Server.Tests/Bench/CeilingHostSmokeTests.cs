using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Pit.LoadTest;
using Pit.TestSupport;

namespace Pit.Server.Tests.Bench;

/// <summary>
/// The harness's ceiling host (post-ceiling, get-ceiling) is only a fair ceiling while it checks what the server checks:
/// a DPoP-bound token with a fresh proof gets 202 and 200, and missing credentials or a replayed proof are refused.
/// </summary>
public sealed class CeilingHostSmokeTests
{
    [Fact]
    public async Task The_ceiling_host_answers_authenticated_requests_and_refuses_missing_credentials_and_replayed_proofs()
    {
        var data = Directory.CreateTempSubdirectory("pit-ceiling-").FullName;
        try
        {
            await using var host = await CeilingHost.StartAsync(data, new Dictionary<string, string?>());
            using (var client = host.CreateClient())
            {
                using var posted = await client.PostAsync("v1/Patient", new StringContent("{}", Encoding.UTF8, "application/fhir+json"));
                Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
                using var page = await client.GetAsync("v1/Patient?_count=20");
                Assert.Equal(HttpStatusCode.OK, page.StatusCode);
                Assert.Contains("\"searchset\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            using var plain = new HttpClient { BaseAddress = host.BaseAddress };
            using (var anonymous = await plain.PostAsync("v1/Patient", new StringContent("{}", Encoding.UTF8, "application/fhir+json")))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            }

            using var key = DpopKey.CreateEcP256();
            var token = host.MintAccessToken(key);
            var url = new Uri(host.BaseAddress, "v1/Patient");
            var proof = key.CreateProof(HttpMethod.Get, url, token);
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(plain, url, token, proof)).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(plain, url, token, proof)).StatusCode);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, Uri url, string token, string proof)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("DPoP", token);
        request.Headers.Add("DPoP", proof);
        return await client.SendAsync(request);
    }
}
