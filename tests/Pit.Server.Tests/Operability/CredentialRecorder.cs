using System.Collections.Concurrent;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Operability;

/// <summary>
/// Makes DPoP clients of a test server for any client id and remembers every access token and proof they send, so a
/// test can look for them afterwards (in logs, for instance).
/// </summary>
internal sealed class CredentialRecorder(TestServer server)
{
    private readonly ConcurrentBag<string> _secrets = [];

    /// <summary>Every token and proof sent or minted so far.</summary>
    public IReadOnlyCollection<string> Secrets => _secrets;

    /// <summary>Remembers <paramref name="secret"/> (a token or proof made by hand) and returns it.</summary>
    public string Remember(string secret)
    {
        _secrets.Add(secret);
        return secret;
    }

    /// <summary>A token for <paramref name="key"/> as <paramref name="spec"/> says, remembered.</summary>
    public string Token(DpopKey key, AccessTokenSpec? spec = null) =>
        Remember(server.TokenMinter.Mint((spec ?? new AccessTokenSpec()) with { Jkt = key.Thumbprint }));

    /// <summary>A client of <paramref name="clientId"/> in <paramref name="organisation"/> whose tokens and proofs are remembered.</summary>
    public HttpClient Client(string clientId = "pit-test-client", string organisation = TestServer.DefaultOrganisation, string[]? scopes = null)
    {
        var key = DpopKey.CreateEcP256();
        var token = Token(key, new AccessTokenSpec
        {
            ClientId = clientId,
            OrgnrParent = organisation,
            Scopes = scopes ?? [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope],
        });
        var recording = new Recording(this) { InnerHandler = new SocketsHttpHandler() };
        return new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = recording, DisposesKey = true }) { BaseAddress = server.BaseAddress };
    }

    private sealed class Recording(CredentialRecorder recorder) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            foreach (var proof in request.Headers.TryGetValues("DPoP", out var proofs) ? proofs : [])
            {
                recorder.Remember(proof);
            }

            return base.SendAsync(request, cancellationToken);
        }
    }
}
