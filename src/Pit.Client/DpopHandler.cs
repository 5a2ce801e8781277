using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;

namespace Pit.Client;

/// <summary>
/// Sends every request with <c>Authorization: DPoP &lt;token&gt;</c> and a fresh DPoP proof for exactly that request.
/// Answers a server's <c>use_dpop_nonce</c> challenge once with the nonce it supplied, remembers the latest nonce per
/// origin for later requests, and renews the token once when the server calls it <c>invalid_token</c>.
/// </summary>
public sealed class DpopHandler : DelegatingHandler
{
    private readonly IDpopTokenSource _tokens;
    private readonly ConcurrentDictionary<string, string> _nonces = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates the handler; set <see cref="DelegatingHandler.InnerHandler"/> or use it in a handler chain.</summary>
    /// <param name="tokens">Where access tokens come from; its proof factory signs the proofs.</param>
    public DpopHandler(IDpopTokenSource tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        _tokens = tokens;
    }

    /// <inheritdoc />
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var uri = request.RequestUri ?? throw new InvalidOperationException("A DPoP request needs an absolute URL.");
        var origin = uri.GetLeftPart(UriPartial.Authority);
        var token = await _tokens.GetAccessTokenAsync(false, cancellationToken).ConfigureAwait(false);
        var answeredNonce = false;
        var renewedToken = false;
        while (true)
        {
            _nonces.TryGetValue(origin, out var nonce);
            Authorize(request, token, nonce);
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var newNonce = DpopChallenge.Nonce(response.Headers);
            if (newNonce is not null)
            {
                _nonces[origin] = newNonce;
            }

            if (response.StatusCode != HttpStatusCode.Unauthorized)
            {
                return response;
            }

            var error = DpopChallenge.Error(response.Headers);
            if (error == DpopChallenge.UseDpopNonce && newNonce is not null && !answeredNonce)
            {
                answeredNonce = true;
            }
            else if (error == "invalid_token" && !renewedToken)
            {
                // The cached token may have expired in flight or been revoked: one fresh token, one more try.
                renewedToken = true;
                token = await _tokens.GetAccessTokenAsync(true, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                return response;
            }

            response.Dispose();
        }
    }

    private void Authorize(HttpRequestMessage request, PitAccessToken token, string? nonce)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("DPoP", token.Value);
        request.Headers.Remove("DPoP");
        request.Headers.TryAddWithoutValidation("DPoP", _tokens.Proofs.CreateProof(request.Method, request.RequestUri!, token.Value, nonce));
    }
}
