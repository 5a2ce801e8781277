using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.Security;

namespace Pit.HelseIdStandIn;

/// <summary>Validates <c>private_key_jwt</c> client assertions (RFC 7523) against the registered clients.</summary>
internal sealed class ClientAssertionValidator(StandInIssuer issuer, TimeProvider time)
{
    internal const string AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    /// <summary>Longest accepted assertion lifetime (<c>exp</c> after now), seconds: bounds the replay window.</summary>
    internal const int MaxLifetimeSeconds = 300;

    /// <summary>Most assertions remembered per 10-second bucket of <c>exp</c> (a development stand-in's bound).</summary>
    internal const int SeenPerBucket = 10_000;

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };

    // Keyed by a hash of (client, jti), bucketed by exp: a replayed assertion has the same exp, so the same bucket.
    private readonly TimeBucketedSet _seen = new(bucketSeconds: 10, windowSeconds: MaxLifetimeSeconds + 10, SeenPerBucket);

    /// <summary>The registered client and its verified assertion, or an error description.</summary>
    public async Task<(StandInClientOptions? Client, JsonWebToken? Assertion, string? Error)> ValidateAsync(string assertion, string? clientIdParameter)
    {
        if (assertion.Length > 16_384)
        {
            return (null, null, "client assertion too long");
        }

        JsonWebToken unverified;
        try
        {
            unverified = new JsonWebToken(assertion);
        }
        catch (ArgumentException)
        {
            return (null, null, "client assertion is not a JWT");
        }

        var client = issuer.Clients.FirstOrDefault(c => string.Equals(c.ClientId, unverified.Issuer, StringComparison.Ordinal));
        if (client is null || (clientIdParameter is not null && clientIdParameter != client.ClientId))
        {
            return (null, null, "unknown client");
        }

        var parameters = new TokenValidationParameters
        {
            ValidIssuer = client.ClientId,
            ValidAudiences = [issuer.Issuer, issuer.TokenEndpoint],
            IssuerSigningKey = new JsonWebKey(JsonSerializer.Serialize(client.PublicJwk)),
            ValidAlgorithms = [.. DpopAlgorithms.All],
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(5),
        };
        var result = await _handler.ValidateTokenAsync(assertion, parameters);
        if (!result.IsValid)
        {
            return (null, null, "client assertion is invalid");
        }

        var token = (JsonWebToken)result.SecurityToken;
        if (token.Subject != client.ClientId)
        {
            return (null, null, "client assertion sub must equal iss");
        }

        if (string.IsNullOrEmpty(token.Id))
        {
            return (null, null, "client assertion has no jti");
        }

        var expires = new DateTimeOffset(token.ValidTo, TimeSpan.Zero).ToUnixTimeSeconds();
        if (expires > time.GetUtcNow().ToUnixTimeSeconds() + MaxLifetimeSeconds)
        {
            return (null, null, $"client assertion lives too long (at most {MaxLifetimeSeconds} s)");
        }

        return _seen.TryAdd(SeenKey(client.ClientId, token.Id), expires) switch
        {
            TimeBucketedSetResult.Added => (client, token, null),
            TimeBucketedSetResult.Full => (null, null, "too many client assertions right now; retry shortly"),
            _ => (null, null, "client assertion was already used"),
        };
    }

    private static UInt128 SeenKey(string clientId, string jti)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(clientId + "\n" + jti));
        return new UInt128(BinaryPrimitives.ReadUInt64BigEndian(hash), BinaryPrimitives.ReadUInt64BigEndian(hash.AsSpan(8)));
    }
}
