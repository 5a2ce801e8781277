using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Pit.Server.Auth;

/// <summary>
/// What the DPoP check needs from a validated access token: its <c>cnf.jkt</c>, the replay-share key (client and
/// organisation) and the <c>ath</c> a proof must carry (base64url SHA-256 of the token). They depend on the token
/// alone, so they are derived once per token object and kept with it: <see cref="CachingAccessTokenHandler"/> hands
/// out the same <see cref="JsonWebToken"/> for every request that reuses a cached token, so a client reusing its
/// token pays for the JSON parse of <c>cnf</c>, the hash and the strings once, not per request.
/// </summary>
/// <remarks>
/// Kept in a <see cref="ConditionalWeakTable{TKey, TValue}"/> keyed by the token object: the facts live exactly as long
/// as the token (evicted from the token cache, both go), can never be looked up by another token, and need no bound
/// of their own. Without the token cache (<c>Pit:Auth:CacheValidatedTokens=false</c>) every request has a new token
/// object, and the facts are derived per request as before.
/// </remarks>
internal sealed class AccessTokenFacts
{
    private static readonly ConditionalWeakTable<JsonWebToken, AccessTokenFacts> Known = new();

    private AccessTokenFacts(string? jkt, string? replayShareKey, string ath)
    {
        Jkt = jkt;
        ReplayShareKey = replayShareKey;
        Ath = ath;
    }

    /// <summary>The token's <c>cnf.jkt</c>, or null when the token is not DPoP-bound.</summary>
    public string? Jkt { get; }

    /// <summary>The replay-share partition: the HelseID client acting for one organisation; null without <c>client_id</c>.</summary>
    public string? ReplayShareKey { get; }

    /// <summary>The <c>ath</c> a proof for this token must carry: base64url of the SHA-256 of the encoded token.</summary>
    public string Ath { get; }

    /// <summary>The facts of <paramref name="token"/>, derived on the first call for this token object.</summary>
    public static AccessTokenFacts Of(JsonWebToken token) => Known.GetValue(token, Derive);

    /// <summary>base64url(SHA-256(ASCII(<paramref name="token"/>))), as RFC 9449 §4.2 defines <c>ath</c>.</summary>
    public static string AthOf(string token)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.ASCII.GetBytes(token), hash);
        return Base64Url.EncodeToString(hash);
    }

    /// <summary>Derives the facts of <paramref name="token"/> anew (what every request paid before they were kept with the token).</summary>
    internal static AccessTokenFacts Derive(JsonWebToken token) => new(ReadJkt(token), ClientOf(token), AthOf(token.EncodedToken));

    private static string? ClientOf(JsonWebToken token) =>
        token.TryGetClaim(HelseIdClaims.ClientId, out var clientId)
            ? clientId.Value + "|" + (token.TryGetClaim(HelseIdClaims.OrgnrParent, out var orgnr) ? orgnr.Value : "")
            : null;

    private static string? ReadJkt(JsonWebToken token)
    {
        if (!token.TryGetClaim("cnf", out var cnf))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(cnf.Value);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.TryGetProperty("jkt", out var jkt)
                && jkt.ValueKind == JsonValueKind.String
                && jkt.GetString() is { Length: > 0 } value
                ? value
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
