using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Pit.Server.Auth;

/// <summary>
/// Validates access tokens with <see cref="JsonWebTokenHandler"/> and remembers successful results by the token's
/// SHA-256 until its <c>exp</c>, so a client reusing its token pays signature verification once. The DPoP proof is
/// still checked on every request. Bounded by <see cref="PitAuthOptions.TokenCacheCapacity"/> (a
/// <see cref="BoundedCache{TKey, TValue}"/>: when full, the older half is dropped whole, O(1)); an expired entry is a miss.
/// </summary>
internal sealed class CachingAccessTokenHandler : JsonWebTokenHandler
{
    private readonly TimeProvider _time;

    private readonly BoundedCache<string, Entry> _cache;

    public CachingAccessTokenHandler(IOptions<PitAuthOptions> options, TimeProvider time)
    {
        _time = time;
        _cache = new BoundedCache<string, Entry>(Math.Max(2, options.Value.TokenCacheCapacity), StringComparer.Ordinal);
        MapInboundClaims = false;

        // HelseID tokens are 1-2 KB; the library's 250 KB default invites needless parsing work.
        MaximumTokenSizeInBytes = 16 * 1024;
    }

    internal int Count => _cache.Count;

    public override async Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        var key = Convert.ToBase64String(SHA256.HashData(Encoding.ASCII.GetBytes(token)));
        var now = _time.GetUtcNow();
        if (_cache.TryGetValue(key, out var hit))
        {
            if (hit.ExpiresAt > now)
            {
                // A fresh identity per request: handlers downstream may add claims to it.
                return new TokenValidationResult
                {
                    IsValid = true,
                    SecurityToken = hit.Token,
                    ClaimsIdentity = hit.Identity.Clone(),
                    Issuer = hit.Token.Issuer,
                    TokenType = hit.Token.Typ,
                };
            }

            _cache.Remove(key);
        }

        var result = await base.ValidateTokenAsync(token, validationParameters);
        if (result.IsValid && result.SecurityToken is JsonWebToken jwt && result.ClaimsIdentity is not null)
        {
            var expires = new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero);
            if (expires > now)
            {
                _cache.Set(key, new Entry(jwt, result.ClaimsIdentity.Clone(), expires));
            }
        }

        return result;
    }

    private sealed record Entry(JsonWebToken Token, System.Security.Claims.ClaimsIdentity Identity, DateTimeOffset ExpiresAt);
}
