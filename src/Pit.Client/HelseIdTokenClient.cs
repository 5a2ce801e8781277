using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Pit.Client;

/// <summary>
/// Gets DPoP-bound access tokens from HelseID with the client-credentials grant and a <c>private_key_jwt</c>
/// client assertion, answers the token endpoint's <c>DPoP-Nonce</c> challenge, and caches the token until shortly
/// before it expires. Thread-safe; one instance per client and key.
/// </summary>
public sealed class HelseIdTokenClient : IDpopTokenSource
{
    private const string ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    private readonly HttpClient _http;
    private readonly HelseIdClientOptions _options;
    private readonly JsonWebTokenHandler _jwtHandler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Discovery? _discovery;
    private PitAccessToken? _cached;
    private string? _nonce;

    /// <summary>Creates a token client.</summary>
    /// <param name="httpClient">Used for discovery and the token endpoint (no DPoP handler in it).</param>
    /// <param name="options">The client's registration and key.</param>
    public HelseIdTokenClient(HttpClient httpClient, HelseIdClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Authority);
        ArgumentException.ThrowIfNullOrEmpty(options.ClientId);
        ArgumentNullException.ThrowIfNull(options.ClientKey);
        _http = httpClient;
        _options = options;
        Proofs = new DpopProofFactory(options.DpopKey ?? options.ClientKey, options.TimeProvider);
    }

    /// <inheritdoc />
    public DpopProofFactory Proofs { get; }

    /// <inheritdoc />
    public async ValueTask<PitAccessToken> GetAccessTokenAsync(bool forceRefresh = false, CancellationToken cancellationToken = default)
    {
        var cached = _cached;
        if (!forceRefresh && cached is not null && IsFresh(cached))
        {
            return cached;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another caller may have renewed it while this one waited.
            if (_cached is not null && IsFresh(_cached) && (!forceRefresh || !ReferenceEquals(_cached, cached)))
            {
                return _cached;
            }

            _cached = await RequestTokenAsync(cancellationToken).ConfigureAwait(false);
            return _cached;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Reads the issuer's discovery document (cached after the first success).</summary>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The issuer and token endpoint.</returns>
    public async Task<(string Issuer, Uri TokenEndpoint)> DiscoverAsync(CancellationToken cancellationToken = default)
    {
        var discovery = await GetDiscoveryAsync(cancellationToken).ConfigureAwait(false);
        return (discovery.Issuer, discovery.TokenEndpoint);
    }

    private bool IsFresh(PitAccessToken token)
    {
        var now = _options.TimeProvider.GetUtcNow();
        return now + _options.RenewalMargin < token.ExpiresAt;
    }

    private async Task<PitAccessToken> RequestTokenAsync(CancellationToken cancellationToken)
    {
        var discovery = await GetDiscoveryAsync(cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, discovery.TokenEndpoint)
            {
                Content = new FormUrlEncodedContent(TokenRequestForm(discovery.Issuer)),
            };
            request.Headers.Add("DPoP", Proofs.CreateProof(HttpMethod.Post, discovery.TokenEndpoint, accessToken: null, _nonce));
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new HelseIdTokenException($"Could not reach the token endpoint {discovery.TokenEndpoint}: {e.Message}", innerException: e);
            }

            using (response)
            {
                var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                var nonce = DpopChallenge.Nonce(response.Headers);
                if (nonce is not null)
                {
                    _nonce = nonce;
                }

                if (response.IsSuccessStatusCode)
                {
                    return ParseTokenResponse(body, response.StatusCode);
                }

                var (error, description) = ParseError(body);
                error ??= DpopChallenge.Error(response.Headers);
                if (error == DpopChallenge.UseDpopNonce && nonce is not null && attempt == 0)
                {
                    continue;
                }

                throw new HelseIdTokenException(
                    $"The token endpoint refused the request ({(int)response.StatusCode} {error ?? response.ReasonPhrase}{(description is null ? "" : ": " + description)}).",
                    response.StatusCode, error, description);
            }
        }
    }

    private List<KeyValuePair<string, string>> TokenRequestForm(string issuer) =>
    [
        new("grant_type", "client_credentials"),
        new("client_id", _options.ClientId),
        new("client_assertion_type", ClientAssertionType),
        new("client_assertion", CreateClientAssertion(issuer)),
        new("scope", string.Join(' ', _options.Scopes)),
    ];

    /// <summary>The <c>private_key_jwt</c> assertion: iss = sub = client id, aud = issuer, short-lived, unique jti.</summary>
    internal string CreateClientAssertion(string issuer)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["iss"] = _options.ClientId,
            ["sub"] = _options.ClientId,
            ["aud"] = issuer,
            ["jti"] = DpopProofFactory.NewJti(),
            ["iat"] = now.ToUnixTimeSeconds(),
            ["nbf"] = now.ToUnixTimeSeconds(),
            ["exp"] = (now + _options.ClientAssertionLifetime).ToUnixTimeSeconds(),
        };
        if (OrganisationIdentifier() is { } identifier)
        {
            // HelseID's form for naming the organisation a token is asked for: one authorization_details entry.
            claims["authorization_details"] = new[]
            {
                new Dictionary<string, object>(StringComparer.Ordinal)
                {
                    ["type"] = "helseid_authorization",
                    ["practitioner_role"] = new Dictionary<string, object>(StringComparer.Ordinal)
                    {
                        ["organization"] = new Dictionary<string, object>(StringComparer.Ordinal)
                        {
                            ["identifier"] = new Dictionary<string, object>(StringComparer.Ordinal)
                            {
                                ["system"] = identifier.System,
                                ["type"] = "ENH",
                                ["value"] = identifier.Value,
                            },
                        },
                    },
                },
            };
        }

        return _jwtHandler.CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            SigningCredentials = _options.ClientKey.SigningCredentials,
        });
    }

    /// <summary>
    /// Multi-tenant (a parent, perhaps with a child): ISO 6523 <c>NO:ORGNR:parent[:child]</c>. Single-tenant naming
    /// only a sub-unit: the child's number under HelseID's sub-unit system. Nothing when neither is set.
    /// </summary>
    private (string System, string Value)? OrganisationIdentifier()
    {
        var parent = _options.OrganisationNumber is { Length: > 0 } p ? p : null;
        var child = _options.ChildOrganisationNumber is { Length: > 0 } c ? c : null;
        return (parent, child) switch
        {
            (not null, not null) => ("urn:oid:1.0.6523", $"NO:ORGNR:{parent}:{child}"),
            (not null, null) => ("urn:oid:1.0.6523", $"NO:ORGNR:{parent}"),
            (null, not null) => ("urn:oid:2.16.578.1.12.4.1.2.101", child),
            _ => null,
        };
    }

    private PitAccessToken ParseTokenResponse(string body, HttpStatusCode status)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var token = root.TryGetProperty("access_token", out var at) ? at.GetString() : null;
            if (string.IsNullOrEmpty(token))
            {
                throw new HelseIdTokenException("The token endpoint answered without an access_token.", status);
            }

            var type = root.TryGetProperty("token_type", out var tt) ? tt.GetString() : null;
            if (!string.Equals(type, "DPoP", StringComparison.OrdinalIgnoreCase))
            {
                throw new HelseIdTokenException($"The token endpoint issued a '{type}' token, not a DPoP-bound one.", status);
            }

            var lifetime = root.TryGetProperty("expires_in", out var ei) && ei.TryGetInt32(out var seconds) ? seconds : 60;
            var scopes = root.TryGetProperty("scope", out var sc) && sc.GetString() is { } s
                ? s.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                : [.. _options.Scopes];
            return new PitAccessToken(token, _options.TimeProvider.GetUtcNow().AddSeconds(lifetime), scopes);
        }
        catch (JsonException e)
        {
            throw new HelseIdTokenException("The token endpoint's answer is not JSON.", status, innerException: e);
        }
    }

    private static (string? Error, string? Description) ParseError(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }

            return (root.TryGetProperty("error", out var e) ? e.GetString() : null,
                root.TryGetProperty("error_description", out var d) ? d.GetString() : null);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }

    private async Task<Discovery> GetDiscoveryAsync(CancellationToken cancellationToken)
    {
        if (_discovery is { } known)
        {
            return known;
        }

        var authority = _options.Authority.AbsoluteUri.TrimEnd('/');
        var url = new Uri(authority + "/.well-known/openid-configuration");
        try
        {
            using var response = await _http.GetAsync(url, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                throw new HelseIdTokenException($"Discovery at {url} answered {(int)response.StatusCode} {response.ReasonPhrase}.", response.StatusCode);
            }

            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var json = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            var root = json.RootElement;
            var issuer = root.TryGetProperty("issuer", out var i) ? i.GetString() : null;
            var tokenEndpoint = root.TryGetProperty("token_endpoint", out var t) ? t.GetString() : null;
            if (string.IsNullOrEmpty(issuer) || !Uri.TryCreate(tokenEndpoint, UriKind.Absolute, out var endpoint))
            {
                throw new HelseIdTokenException($"Discovery at {url} has no issuer or token_endpoint.");
            }

            if (!string.Equals(issuer.TrimEnd('/'), authority, StringComparison.Ordinal))
            {
                throw new HelseIdTokenException($"Discovery at {url} names issuer '{issuer}', not the configured authority '{authority}'.");
            }

            _discovery = new Discovery(issuer, endpoint);
            return _discovery;
        }
        catch (HttpRequestException e)
        {
            throw new HelseIdTokenException($"Could not reach {url}: {e.Message}", innerException: e);
        }
        catch (JsonException e)
        {
            throw new HelseIdTokenException($"Discovery at {url} is not JSON.", innerException: e);
        }
    }

    private sealed record Discovery(string Issuer, Uri TokenEndpoint);
}
