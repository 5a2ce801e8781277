using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.Security;

namespace Pit.HelseIdStandIn;

/// <summary>
/// The stand-in's identity: issuer, signing key and token minting. Resolved in-process by the API host so it can
/// validate the stand-in's tokens without fetching its own discovery document over HTTP.
/// </summary>
public sealed class StandInIssuer : IDisposable
{
    /// <summary><see cref="HelseIdClaims.OrgnrParent"/>.</summary>
    public const string OrgnrParentClaim = HelseIdClaims.OrgnrParent;

    /// <summary><see cref="HelseIdClaims.OrgnrChild"/>.</summary>
    public const string OrgnrChildClaim = HelseIdClaims.OrgnrChild;

    /// <summary><see cref="HelseIdClaims.ClientName"/>.</summary>
    public const string ClientNameClaim = HelseIdClaims.ClientName;

    /// <summary><see cref="HelseIdClaims.OrgnrSupplier"/>: the supplier of a multi-tenant client.</summary>
    public const string OrgnrSupplierClaim = HelseIdClaims.OrgnrSupplier;

    /// <summary><see cref="HelseIdClaims.ClientTenancy"/>: <c>single-tenant</c> or <c>multi-tenant</c>.</summary>
    public const string ClientTenancyClaim = HelseIdClaims.ClientTenancy;

    /// <summary><see cref="HelseIdClaims.ClientAmr"/>.</summary>
    public const string ClientAmrClaim = HelseIdClaims.ClientAmr;

    private readonly StandInOptions _options;
    private readonly IServiceProvider _services;
    private readonly TimeProvider _time;
    private readonly RSA _rsa;
    private readonly JsonWebTokenHandler _handler = new();
    private string? _issuer;

    /// <summary>Creates the issuer from its options; <paramref name="services"/> resolves the listening address lazily.</summary>
    public StandInIssuer(IOptions<StandInOptions> options, IServiceProvider services, TimeProvider time)
    {
        _options = options.Value;
        _services = services;
        _time = time;
        _rsa = RSA.Create();
        if (_options.SigningKey is { Count: > 0 } jwk)
        {
            _rsa.ImportParameters(ToRsaParameters(jwk));
        }
        else
        {
            _rsa.KeySize = 2048;
        }

        var publicParameters = _rsa.ExportParameters(false);
        KeyId = JwkThumbprint.Rsa(Base64Url.EncodeToString(publicParameters.Exponent), Base64Url.EncodeToString(publicParameters.Modulus));
        SigningKey = new RsaSecurityKey(_rsa) { KeyId = KeyId };
        SigningCredentials = new SigningCredentials(SigningKey, SecurityAlgorithms.RsaSha256);
        PublicKey = new RsaSecurityKey(publicParameters) { KeyId = KeyId };
    }

    /// <summary>Key id (<c>kid</c>): the RFC 7638 thumbprint of the signing key.</summary>
    public string KeyId { get; }

    /// <summary>The private signing key.</summary>
    public RsaSecurityKey SigningKey { get; }

    /// <summary>RS256 credentials over <see cref="SigningKey"/>.</summary>
    public SigningCredentials SigningCredentials { get; }

    /// <summary>The public half of the signing key, as published in the JWKS.</summary>
    public RsaSecurityKey PublicKey { get; }

    /// <summary>Audience of issued tokens.</summary>
    public string Audience => _options.Audience;

    /// <summary>Token lifetime.</summary>
    public TimeSpan TokenLifetime => TimeSpan.FromSeconds(_options.TokenLifetimeSeconds);

    /// <summary>Path the endpoints are mapped under.</summary>
    public string Path => "/" + _options.Path.Trim('/');

    /// <summary>
    /// The exact issuer: <see cref="StandInOptions.Issuer"/> when configured; otherwise the host's first listening
    /// address (wildcards replaced by <c>localhost</c>) plus <see cref="Path"/>, known once the server has started.
    /// </summary>
    public string Issuer => _issuer ??= ResolveIssuer();

    /// <summary>The token endpoint, <c>{issuer}/connect/token</c> as at HelseID.</summary>
    public string TokenEndpoint => Issuer + "/connect/token";

    /// <summary>Registered clients.</summary>
    public IReadOnlyList<StandInClientOptions> Clients => _options.Clients;

    /// <summary>
    /// Issues an RS256 <c>at+jwt</c> access token shaped like HelseID's client-credentials tokens, for the
    /// organisations of <paramref name="grant"/>.
    /// </summary>
    internal string CreateAccessToken(StandInClientOptions client, OrganisationGrant grant, IReadOnlyCollection<string> scopes, string jkt)
    {
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        var payload = new JsonObject
        {
            ["iss"] = Issuer,
            ["nbf"] = now,
            ["iat"] = now,
            ["exp"] = now + _options.TokenLifetimeSeconds,
            ["aud"] = Audience,
            ["scope"] = new JsonArray([.. scopes.Select(s => JsonValue.Create(s))]),
            ["cnf"] = new JsonObject { ["jkt"] = jkt },
            ["client_id"] = client.ClientId,
            ["client_amr"] = "private_key_jwt",
            [ClientAmrClaim] = "rsa_private_key",
            [OrgnrParentClaim] = grant.OrgnrParent,
            [ClientTenancyClaim] = client.Tenancy == StandInTenancy.MultiTenant ? "multi-tenant" : "single-tenant",
            ["jti"] = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)),
        };
        if (grant.OrgnrChild is not null)
        {
            payload[OrgnrChildClaim] = grant.OrgnrChild;
        }

        if (grant.OrgnrSupplier is not null)
        {
            payload[OrgnrSupplierClaim] = grant.OrgnrSupplier;
        }

        if (!string.IsNullOrEmpty(client.ClientName))
        {
            payload[ClientNameClaim] = client.ClientName;
        }

        return _handler.CreateToken(payload.ToJsonString(), SigningCredentials, new Dictionary<string, object> { ["typ"] = "at+jwt" });
    }

    /// <summary>The JWKS document's single key.</summary>
    public JsonObject PublicJwk()
    {
        var p = _rsa.ExportParameters(false);
        return new JsonObject
        {
            ["kty"] = "RSA",
            ["use"] = "sig",
            ["alg"] = "RS256",
            ["kid"] = KeyId,
            ["n"] = Base64Url.EncodeToString(p.Modulus),
            ["e"] = Base64Url.EncodeToString(p.Exponent),
        };
    }

    /// <inheritdoc />
    public void Dispose() => _rsa.Dispose();

    private string ResolveIssuer()
    {
        if (!string.IsNullOrWhiteSpace(_options.Issuer))
        {
            return _options.Issuer.TrimEnd('/');
        }

        var address = _services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
            ?? throw new InvalidOperationException(
                "The HelseID stand-in has no issuer yet: set Pit:Auth:StandIn:Issuer (or Pit:Auth:Authority), or use it after the server has started.");
        var uri = new UriBuilder(address.Replace("://+", "://localhost", StringComparison.Ordinal).Replace("://*", "://localhost", StringComparison.Ordinal));
        if (uri.Host is "0.0.0.0" or "[::]")
        {
            uri.Host = "localhost";
        }

        return uri.Uri.GetLeftPart(UriPartial.Authority) + Path;
    }

    private static RSAParameters ToRsaParameters(Dictionary<string, string> jwk)
    {
        if (!jwk.TryGetValue("kty", out var kty) || kty != "RSA")
        {
            throw new InvalidOperationException("Pit:Auth:StandIn:SigningKey must be a private RSA JWK.");
        }

        return JwkParameters.Rsa(name => jwk.GetValueOrDefault(name));
    }
}
