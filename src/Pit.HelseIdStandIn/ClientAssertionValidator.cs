using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Pit.HelseIdStandIn;

/// <summary>Validates <c>private_key_jwt</c> client assertions (RFC 7523) against the registered clients.</summary>
internal sealed class ClientAssertionValidator(StandInIssuer issuer, TimeProvider time)
{
    internal const string AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    private const int MaxSeenAssertions = 10_000;

    private static readonly string[] Algorithms =
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };
    private readonly ConcurrentDictionary<string, DateTimeOffset> _seen = new(StringComparer.Ordinal);

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
            ValidAlgorithms = Algorithms,
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

        var now = time.GetUtcNow();
        if (_seen.Count >= MaxSeenAssertions)
        {
            foreach (var (key, expires) in _seen)
            {
                if (expires < now)
                {
                    _seen.TryRemove(key, out _);
                }
            }
        }

        if (_seen.Count >= MaxSeenAssertions || !_seen.TryAdd(client.ClientId + " " + token.Id, new DateTimeOffset(token.ValidTo, TimeSpan.Zero).AddSeconds(5)))
        {
            return (null, null, "client assertion was already used");
        }

        return (client, token, null);
    }
}
