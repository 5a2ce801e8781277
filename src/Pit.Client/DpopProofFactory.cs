using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Pit.Client;

/// <summary>
/// Makes DPoP proofs (RFC 9449 §4.2): header <c>typ</c> <c>dpop+jwt</c>, <c>alg</c> and the public <c>jwk</c>; claims
/// <c>jti</c> (unique), <c>htm</c>, <c>htu</c> (the URL without query and fragment), <c>iat</c>, and on resource
/// requests <c>ath</c> (base64url SHA-256 of the access token) and the server's <c>nonce</c> when it asked for one.
/// </summary>
public sealed class DpopProofFactory
{
    /// <summary>The <c>typ</c> header value of a DPoP proof.</summary>
    public const string ProofType = "dpop+jwt";

    private readonly ClientSigningKey _key;
    private readonly TimeProvider _timeProvider;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false };
    private readonly Dictionary<string, object> _header;

    /// <summary>Creates a factory signing with <paramref name="key"/>.</summary>
    /// <param name="key">The DPoP key; its thumbprint is what the access token gets bound to.</param>
    /// <param name="timeProvider">Clock for <c>iat</c>; the system clock when null.</param>
    public DpopProofFactory(ClientSigningKey key, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(key);
        _key = key;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _header = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["jwk"] = key.PublicJwk.ToDictionary(p => p.Key, p => (object)p.Value, StringComparer.Ordinal),
        };
    }

    /// <summary>The key the proofs are signed with.</summary>
    public ClientSigningKey Key => _key;

    /// <summary>Creates a proof for one HTTP request.</summary>
    /// <param name="method">The request method (<c>htm</c>).</param>
    /// <param name="requestUri">The absolute request URL; query and fragment are dropped for <c>htu</c>.</param>
    /// <param name="accessToken">The access token sent with the request (gives <c>ath</c>); null for token requests.</param>
    /// <param name="nonce">A nonce the server supplied in <c>DPoP-Nonce</c>, if any.</param>
    public string CreateProof(HttpMethod method, Uri requestUri, string? accessToken = null, string? nonce = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(requestUri);
        var claims = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["jti"] = NewJti(),
            ["htm"] = method.Method,
            ["htu"] = HtuOf(requestUri),
            ["iat"] = _timeProvider.GetUtcNow().ToUnixTimeSeconds(),
        };
        if (accessToken is not null)
        {
            claims["ath"] = AccessTokenHash(accessToken);
        }

        if (nonce is not null)
        {
            claims["nonce"] = nonce;
        }

        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            TokenType = ProofType,
            AdditionalHeaderClaims = _header,
            Claims = claims,
            SigningCredentials = _key.SigningCredentials,
        });
    }

    /// <summary>
    /// The <c>htu</c> for a request URL: scheme, authority and path only (RFC 9449 §4.2 excludes query and fragment).
    /// </summary>
    /// <param name="requestUri">An absolute URL.</param>
    public static string HtuOf(Uri requestUri)
    {
        ArgumentNullException.ThrowIfNull(requestUri);
        if (!requestUri.IsAbsoluteUri)
        {
            throw new ArgumentException("A DPoP proof needs the absolute request URL.", nameof(requestUri));
        }

        return requestUri.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);
    }

    /// <summary>The <c>ath</c> claim for an access token: base64url(SHA-256(ASCII token)).</summary>
    /// <param name="accessToken">The access token as sent in the Authorization header.</param>
    public static string AccessTokenHash(string accessToken)
    {
        ArgumentNullException.ThrowIfNull(accessToken);
        return Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken)));
    }

    internal static string NewJti() => Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(16));
}
