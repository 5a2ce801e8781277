namespace Pit.Client;

/// <summary>How to get access tokens from HelseID (or the local stand-in) with the client-credentials grant.</summary>
public sealed class HelseIdClientOptions
{
    /// <summary>HelseID test: <c>https://helseid-sts.test.nhn.no</c>.</summary>
    public static readonly Uri TestAuthority = new("https://helseid-sts.test.nhn.no");

    /// <summary>HelseID production: <c>https://helseid-sts.nhn.no</c>.</summary>
    public static readonly Uri ProductionAuthority = new("https://helseid-sts.nhn.no");

    /// <summary>The issuer; discovery is read from <c>{Authority}/.well-known/openid-configuration</c>.</summary>
    public required Uri Authority { get; set; }

    /// <summary>The client id registered in HelseID.</summary>
    public required string ClientId { get; set; }

    /// <summary>The client's private key, signing the <c>private_key_jwt</c> client assertion.</summary>
    public required ClientSigningKey ClientKey { get; set; }

    /// <summary>The key access tokens are bound to and DPoP proofs are signed with; the client key when null.</summary>
    public ClientSigningKey? DpopKey { get; set; }

    /// <summary>Scopes to request. Default: <c>nhn:pit/api.read</c> and <c>nhn:pit/api.write</c>.</summary>
    public IList<string> Scopes { get; set; } = ["nhn:pit/api.read", "nhn:pit/api.write"];

    /// <summary>
    /// For multi-tenant clients: the legal entity (9 digits) the token is asked for. Sent to HelseID as
    /// <c>authorization_details</c> in the client assertion. Leave null for single-tenant clients.
    /// </summary>
    public string? OrganisationNumber { get; set; }

    /// <summary>
    /// The optional sub-unit (9 digits): for multi-tenant clients under <see cref="OrganisationNumber"/>; for
    /// single-tenant clients alone (leave <see cref="OrganisationNumber"/> null), sent in HelseID's sub-unit form
    /// (system <c>urn:oid:2.16.578.1.12.4.1.2.101</c>).
    /// </summary>
    public string? ChildOrganisationNumber { get; set; }

    /// <summary>How long before expiry a cached token is renewed. Default 60 seconds.</summary>
    public TimeSpan RenewalMargin { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Lifetime of each client assertion. Default 60 seconds.</summary>
    public TimeSpan ClientAssertionLifetime { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Clock for assertions, proofs and token expiry. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
