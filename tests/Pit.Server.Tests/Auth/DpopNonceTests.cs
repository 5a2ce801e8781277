using System.Net;
using System.Security.Cryptography;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>Server nonces for API requests (<c>Pit:Auth:DPoP:RequireNonce=true</c>), shared through a configured key.</summary>
public sealed class DpopNonceTests : IAsyncLifetime
{
    private readonly string _nonceKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private TestServer _server = null!;
    private TestServer _sibling = null!;

    private Dictionary<string, string?> Settings => new()
    {
        ["Pit:Auth:DPoP:RequireNonce"] = "true",
        ["Pit:Auth:DPoP:NonceKey"] = _nonceKey,
    };

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync(Settings);
        _sibling = await TestServer.StartAsync(Settings);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        await _sibling.DisposeAsync();
    }

    [Fact]
    public async Task Proof_without_a_nonce_is_answered_with_use_dpop_nonce_and_a_fresh_nonce()
    {
        using var requests = new AuthRequests(_server);
        var token = requests.ValidToken();
        using var response = await requests.SendAsync(token, requests.Proof(token));
        await AuthAssert.UnauthorizedAsync(response, "use_dpop_nonce");
        Assert.True(response.Headers.TryGetValues("DPoP-Nonce", out var nonce) && nonce.Single().Length > 0);
    }

    [Fact]
    public async Task Proof_carrying_the_server_nonce_is_accepted()
    {
        using var requests = new AuthRequests(_server);
        var token = requests.ValidToken();
        using var challenge = await requests.SendAsync(token, requests.Proof(token));
        var nonce = challenge.Headers.GetValues("DPoP-Nonce").Single();
        using var response = await requests.SendAsync(token, requests.Proof(token, nonce: nonce));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Forged_nonce_is_refused_with_use_dpop_nonce()
    {
        using var requests = new AuthRequests(_server);
        var token = requests.ValidToken();
        using var response = await requests.SendAsync(token, requests.Proof(token, nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        await AuthAssert.UnauthorizedAsync(response, "use_dpop_nonce");
    }

    [Fact]
    public async Task DpopHttpHandler_answers_the_nonce_challenge_and_reuses_the_nonce()
    {
        using var client = _server.CreateClient();
        using var first = await client.GetAsync("v1/Patient");
        AuthAssert.PassedAuthentication(first);
        using var second = await client.PostAsync("v1/Patient", new StringContent("{\"resourceType\":\"Patient\"}"));
        AuthAssert.PassedAuthentication(second);
    }

    [Fact]
    public async Task Nonce_from_another_instance_sharing_the_key_is_accepted()
    {
        using var requests = new AuthRequests(_server);
        var token = requests.ValidToken();
        using var challenge = await requests.SendAsync(token, requests.Proof(token));
        var nonce = challenge.Headers.GetValues("DPoP-Nonce").Single();

        using var siblingRequests = new AuthRequests(_sibling);
        var siblingToken = siblingRequests.ValidToken();
        using var response = await siblingRequests.SendAsync(siblingToken, siblingRequests.Proof(siblingToken, nonce: nonce));
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task After_a_nonce_key_rotation_nonces_of_the_previous_key_are_accepted_until_it_is_removed_and_new_nonces_use_the_new_key()
    {
        var newKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        await using var rotated = await TestServer.StartAsync(new Dictionary<string, string?>(Settings)
        {
            ["Pit:Auth:DPoP:NonceKey"] = newKey,
            ["Pit:Auth:DPoP:PreviousNonceKey"] = _nonceKey,
        });
        await using var retired = await TestServer.StartAsync(new Dictionary<string, string?>(Settings) { ["Pit:Auth:DPoP:NonceKey"] = newKey });

        var oldNonce = await NonceFromAsync(_server);
        using (var response = await SendWithNonceAsync(rotated, oldNonce))
        {
            AuthAssert.PassedAuthentication(response);
        }

        using (var response = await SendWithNonceAsync(retired, oldNonce))
        {
            await AuthAssert.UnauthorizedAsync(response, "use_dpop_nonce");
        }

        using (var response = await SendWithNonceAsync(retired, await NonceFromAsync(rotated)))
        {
            AuthAssert.PassedAuthentication(response);
        }
    }

    private static async Task<string> NonceFromAsync(TestServer server)
    {
        using var requests = new AuthRequests(server);
        var token = requests.ValidToken();
        using var challenge = await requests.SendAsync(token, requests.Proof(token));
        return challenge.Headers.GetValues("DPoP-Nonce").Single();
    }

    private static async Task<HttpResponseMessage> SendWithNonceAsync(TestServer server, string nonce)
    {
        using var requests = new AuthRequests(server);
        var token = requests.ValidToken();
        return await requests.SendAsync(token, requests.Proof(token, nonce: nonce));
    }

    [Fact]
    public async Task Token_endpoint_nonce_is_not_accepted_by_the_API()
    {
        using var requests = new AuthRequests(_server);
        using var http = _server.CreateAnonymousClient();
        var tokenEndpoint = new Uri(_server.BaseAddress, "helseid-standin/connect/token");
        using var tokenRequest = new HttpRequestMessage(HttpMethod.Post, tokenEndpoint)
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "client_credentials",
                ["client_assertion_type"] = StandInTokenClient.JwtBearerAssertionType,
                ["client_assertion"] = "x.y.z",
            }),
        };
        tokenRequest.Headers.Add("DPoP", requests.Key.CreateProof(HttpMethod.Post, tokenEndpoint, null));
        using var tokenChallenge = await http.SendAsync(tokenRequest);
        Assert.Equal(HttpStatusCode.BadRequest, tokenChallenge.StatusCode);
        var tokenEndpointNonce = tokenChallenge.Headers.GetValues("DPoP-Nonce").Single();

        var token = requests.ValidToken();
        using var response = await requests.SendAsync(token, requests.Proof(token, nonce: tokenEndpointNonce));
        await AuthAssert.UnauthorizedAsync(response, "use_dpop_nonce");
    }
}
