using System.Net;
using System.Net.Http.Headers;

namespace Pit.TestSupport;

/// <summary>
/// Sends <c>Authorization: DPoP &lt;token&gt;</c> (when a token source is given) and a fresh proof on every request,
/// with <c>htu</c> = the request URL without query and fragment; on a <c>use_dpop_nonce</c> challenge (401 from an
/// API, 400 from a token endpoint) it remembers the <c>DPoP-Nonce</c> and retries once.
/// </summary>
public sealed class DpopHttpHandler : DelegatingHandler
{
    private readonly DpopKey _key;
    private readonly Func<CancellationToken, ValueTask<string>>? _accessToken;
    private string? _nonce;

    /// <summary>Proofs with <paramref name="key"/>, token from <paramref name="accessToken"/> (null: proof only, as for a token endpoint).</summary>
    public DpopHttpHandler(DpopKey key, Func<CancellationToken, ValueTask<string>>? accessToken)
    {
        _key = key;
        _accessToken = accessToken;
    }

    /// <summary>Proofs with <paramref name="key"/> for a fixed <paramref name="accessToken"/>.</summary>
    public DpopHttpHandler(DpopKey key, string accessToken)
        : this(key, _ => ValueTask.FromResult(accessToken))
    {
    }

    /// <summary>The last nonce the server sent.</summary>
    public string? Nonce => _nonce;

    /// <summary>Dispose the key with the handler (for keys made only for this client).</summary>
    public bool DisposesKey { get; init; }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && DisposesKey)
        {
            _key.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc />
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var token = _accessToken is null ? null : await _accessToken(cancellationToken);
        byte[]? body = request.Content is null ? null : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        Authorise(request, token);
        var response = await base.SendAsync(request, cancellationToken);
        if (!IsNonceChallenge(response, out var nonce))
        {
            RememberNonce(response);
            return response;
        }

        _nonce = nonce;
        response.Dispose();
        using var retry = new HttpRequestMessage(request.Method, request.RequestUri) { Version = request.Version };
        foreach (var header in request.Headers)
        {
            retry.Headers.TryAddWithoutValidation(header.Key, header.Value);
        }

        if (body is not null)
        {
            retry.Content = new ByteArrayContent(body);
            foreach (var header in request.Content!.Headers)
            {
                retry.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        Authorise(retry, token);
        var second = await base.SendAsync(retry, cancellationToken);
        RememberNonce(second);
        return second;
    }

    private void Authorise(HttpRequestMessage request, string? token)
    {
        request.Headers.Remove("DPoP");
        request.Headers.TryAddWithoutValidation("DPoP", _key.CreateProof(request.Method, request.RequestUri!, token, _nonce));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("DPoP", token);
        }
    }

    private void RememberNonce(HttpResponseMessage response)
    {
        if (response.Headers.TryGetValues("DPoP-Nonce", out var values))
        {
            _nonce = values.FirstOrDefault() ?? _nonce;
        }
    }

    private static bool IsNonceChallenge(HttpResponseMessage response, out string? nonce)
    {
        nonce = response.Headers.TryGetValues("DPoP-Nonce", out var values) ? values.FirstOrDefault() : null;
        if (nonce is null)
        {
            return false;
        }

        return response.StatusCode switch
        {
            HttpStatusCode.Unauthorized => response.Headers.WwwAuthenticate.ToString().Contains("use_dpop_nonce", StringComparison.Ordinal),
            HttpStatusCode.BadRequest => true,
            _ => false,
        };
    }
}
