using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>Hand-built requests for negative tests: a key, a token bound to it, and raw headers.</summary>
internal sealed class AuthRequests(TestServer server) : IDisposable
{
    private readonly HttpClient _http = server.CreateAnonymousClient();

    public DpopKey Key { get; } = DpopKey.CreateEcP256();

    public Uri PatientUrl => new(server.BaseAddress, "v1/Patient");

    public string Token(AccessTokenSpec? spec = null) => server.TokenMinter.Mint((spec ?? new AccessTokenSpec()) with { Jkt = spec is null ? Key.Thumbprint : spec.Jkt });

    public string ValidToken() => Token(new AccessTokenSpec { Jkt = Key.Thumbprint });

    public string Proof(string? token, DpopProofOptions? options = null, HttpMethod? method = null, Uri? url = null, string? nonce = null) =>
        Key.CreateProof(method ?? HttpMethod.Get, url ?? PatientUrl, token, nonce, options);

    /// <summary>Sends with <c>Authorization: {authorization}</c> (if any) and each of <paramref name="proofs"/> as a DPoP header.</summary>
    public async Task<HttpResponseMessage> SendAsync(string? authorization, IEnumerable<string> proofs, HttpMethod? method = null, Uri? url = null)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, url ?? PatientUrl);
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        foreach (var proof in proofs)
        {
            request.Headers.TryAddWithoutValidation("DPoP", proof);
        }

        if (request.Method == HttpMethod.Post)
        {
            request.Content = new StringContent("{\"resourceType\":\"Patient\"}", System.Text.Encoding.UTF8, "application/fhir+json");
        }

        return await _http.SendAsync(request);
    }

    public Task<HttpResponseMessage> SendAsync(string token, string proof, HttpMethod? method = null, Uri? url = null) =>
        SendAsync("DPoP " + token, [proof], method, url);

    /// <summary>A request whose token is valid and whose proof is built with <paramref name="options"/>.</summary>
    public Task<HttpResponseMessage> SendWithProofAsync(DpopProofOptions options)
    {
        var token = ValidToken();
        return SendAsync(token, Proof(token, options));
    }

    public void Dispose()
    {
        _http.Dispose();
        Key.Dispose();
    }
}
