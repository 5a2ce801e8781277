using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.HelseIdStandIn;
using Pit.Security;

namespace Pit.TestSupport;

/// <summary>Mints HelseID-shaped access tokens with a real signing key (normally the stand-in's), with knobs.</summary>
/// <param name="credentials">Signing credentials, e.g. <see cref="StandInIssuer.SigningCredentials"/>.</param>
/// <param name="issuer">The <c>iss</c> to write.</param>
/// <param name="audience">The <c>aud</c> to write.</param>
public sealed class AccessTokenMinter(SigningCredentials credentials, string issuer, string audience)
{
    /// <summary>Read scope.</summary>
    public const string ReadScope = "nhn:pit/api.read";

    /// <summary>Write scope.</summary>
    public const string WriteScope = "nhn:pit/api.write";

    private readonly JsonWebTokenHandler _handler = new();

    /// <summary>A minter that signs with the running stand-in's key and uses its issuer and audience.</summary>
    public static AccessTokenMinter ForStandIn(StandInIssuer standIn) => new(standIn.SigningCredentials, standIn.Issuer, standIn.Audience);

    /// <summary>The issuer written by default.</summary>
    public string Issuer => issuer;

    /// <summary>Mints a token as <paramref name="spec"/> describes.</summary>
    public string Mint(AccessTokenSpec spec)
    {
        var issuedAt = spec.IssuedAt ?? DateTimeOffset.UtcNow;
        var payload = new JsonObject
        {
            ["iss"] = spec.Issuer ?? issuer,
            ["nbf"] = (spec.NotBefore ?? issuedAt).ToUnixTimeSeconds(),
            ["iat"] = issuedAt.ToUnixTimeSeconds(),
            ["exp"] = issuedAt.Add(spec.Lifetime).ToUnixTimeSeconds(),
            ["aud"] = spec.Audience ?? audience,
            ["scope"] = spec.ScopeAsString
                ? string.Join(' ', spec.Scopes)
                : new JsonArray([.. spec.Scopes.Select(s => JsonValue.Create(s))]),
            ["client_id"] = spec.ClientId,
            ["client_amr"] = "private_key_jwt",
            [HelseIdClaims.ClientAmr] = "rsa_private_key",
            ["jti"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)),
        };
        if (spec.Jkt is not null)
        {
            payload["cnf"] = new JsonObject { ["jkt"] = spec.Jkt };
        }

        if (spec.OrgnrParent is not null)
        {
            payload[HelseIdClaims.OrgnrParent] = spec.OrgnrParent;
        }

        if (spec.OrgnrChild is not null)
        {
            payload[HelseIdClaims.OrgnrChild] = spec.OrgnrChild;
        }

        payload[HelseIdClaims.ClientName] = spec.ClientName;
        foreach (var (name, value) in spec.ExtraClaims)
        {
            payload[name] = value?.DeepClone();
        }

        foreach (var name in spec.OmitClaims)
        {
            payload.Remove(name);
        }

        var header = new Dictionary<string, object>();
        if (spec.TokenType is not null)
        {
            header["typ"] = spec.TokenType;
        }

        return _handler.CreateToken(payload.ToJsonString(), spec.SigningCredentials ?? credentials, header);
    }
}

/// <summary>What an access token says. Defaults make a valid read+write token once <see cref="Jkt"/> is set.</summary>
public sealed record AccessTokenSpec
{
    /// <summary><c>cnf.jkt</c>: the DPoP key's thumbprint; null leaves <c>cnf</c> out.</summary>
    public string? Jkt { get; init; }

    /// <summary><c>client_id</c>.</summary>
    public string ClientId { get; init; } = "pit-test-client";

    /// <summary><c>helseid://claims/client/client_name</c>.</summary>
    public string ClientName { get; init; } = "PIT test client";

    /// <summary><c>orgnr_parent</c>; null leaves it out.</summary>
    public string? OrgnrParent { get; init; } = "974762501";

    /// <summary><c>orgnr_child</c>; null leaves it out.</summary>
    public string? OrgnrChild { get; init; }

    /// <summary>Scopes.</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope];

    /// <summary>Write <c>scope</c> as a space-separated string instead of HelseID's JSON array.</summary>
    public bool ScopeAsString { get; init; }

    /// <summary><c>iat</c> (and by default <c>nbf</c>); now when null.</summary>
    public DateTimeOffset? IssuedAt { get; init; }

    /// <summary><c>nbf</c> instead of <see cref="IssuedAt"/>.</summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary><c>exp</c> - <c>iat</c>. Default 600 s, as HelseID.</summary>
    public TimeSpan Lifetime { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>Header <c>typ</c>; null leaves it to the library's default (<c>JWT</c>).</summary>
    public string? TokenType { get; init; } = "at+jwt";

    /// <summary><c>iss</c> instead of the minter's.</summary>
    public string? Issuer { get; init; }

    /// <summary><c>aud</c> instead of the minter's.</summary>
    public string? Audience { get; init; }

    /// <summary>Sign with these instead (wrong key, other algorithm).</summary>
    public SigningCredentials? SigningCredentials { get; init; }

    /// <summary>Claims added or replaced.</summary>
    public IReadOnlyDictionary<string, JsonNode?> ExtraClaims { get; init; } = new Dictionary<string, JsonNode?>();

    /// <summary>Claims removed after everything else.</summary>
    public IReadOnlyCollection<string> OmitClaims { get; init; } = [];
}
