namespace Pit.HelseIdStandIn;

/// <summary>Options of section <c>Pit:Auth:StandIn</c>: the local HelseID stand-in (development and tests only).</summary>
public sealed class StandInOptions
{
    /// <summary>
    /// Hosts the stand-in in-process. Start-up fails unless the environment is Development or named in
    /// <see cref="AllowedEnvironments"/>.
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>Environments besides Development where the stand-in may start (e.g. <c>Test</c>); Production never.</summary>
    public string[] AllowedEnvironments { get; set; } = [];

    /// <summary>
    /// Issuer (<c>iss</c>) of the tokens, exact, no trailing slash, e.g. <c>http://localhost:5080/helseid-standin</c>.
    /// When empty, the host decides (Pit.Server uses <c>Pit:Auth:Authority</c>, else its own first listening address
    /// plus <see cref="Path"/>).
    /// </summary>
    public string? Issuer { get; set; }

    /// <summary>Path the stand-in's endpoints are mapped under. Default <c>/helseid-standin</c>.</summary>
    public string Path { get; set; } = "/helseid-standin";

    /// <summary>Audience (<c>aud</c>) of issued access tokens. Default <c>nhn:pit</c>.</summary>
    public string Audience { get; set; } = "nhn:pit";

    /// <summary>Access-token lifetime in seconds. Default 600, as HelseID.</summary>
    public int TokenLifetimeSeconds { get; set; } = 600;

    /// <summary>Private RSA signing key as JWK members; a fresh 2048-bit key per process when absent.</summary>
    public Dictionary<string, string>? SigningKey { get; set; }

    /// <summary>Registered clients.</summary>
    public List<StandInClientOptions> Clients { get; set; } = [];
}

/// <summary>HelseID's two kinds of client configuration.</summary>
public enum StandInTenancy
{
    /// <summary>Bound to one legal entity (<see cref="StandInClientOptions.OrgnrParent"/>).</summary>
    SingleTenant,

    /// <summary>A supplier's client that acts for the customers that delegated to it (<see cref="StandInClientOptions.Customers"/>).</summary>
    MultiTenant,
}

/// <summary>A client registered with the stand-in (<c>Pit:Auth:StandIn:Clients:N</c>).</summary>
public sealed class StandInClientOptions
{
    /// <summary>The client id (<c>iss</c> and <c>sub</c> of its client assertions).</summary>
    public string ClientId { get; set; } = "";

    /// <summary>Display name, issued as <c>helseid://claims/client/client_name</c>.</summary>
    public string? ClientName { get; set; }

    /// <summary>The client's public JWK (RSA or EC members) that verifies its client assertions.</summary>
    public Dictionary<string, string> PublicJwk { get; set; } = [];

    /// <summary>
    /// <see cref="StandInTenancy.SingleTenant"/> (default) or <see cref="StandInTenancy.MultiTenant"/>, issued as
    /// <c>helseid://claims/client/client_tenancy</c>.
    /// </summary>
    public StandInTenancy Tenancy { get; set; }

    /// <summary>Single-tenant: the legal entity, 9 digits (<c>orgnr_parent</c>).</summary>
    public string? OrgnrParent { get; set; }

    /// <summary>Single-tenant: the sub-unit issued when the request names none (<c>orgnr_child</c>), optional.</summary>
    public string? OrgnrChild { get; set; }

    /// <summary>Single-tenant: further sub-units of <see cref="OrgnrParent"/> the client may name in a request.</summary>
    public string[] ChildOrganisations { get; set; } = [];

    /// <summary>Multi-tenant: the supplier's own organisation number (<c>orgnr_supplier</c>).</summary>
    public string? OrgnrSupplier { get; set; }

    /// <summary>Multi-tenant: the customer organisations that delegated to the supplier.</summary>
    public List<StandInCustomerOptions> Customers { get; set; } = [];

    /// <summary>Scopes the client may be granted.</summary>
    public string[] Scopes { get; set; } = [];

    /// <summary>Every organisation number in this registration, for validation.</summary>
    public IEnumerable<string> OrganisationNumbers() =>
        new[] { OrgnrParent, OrgnrChild, OrgnrSupplier }.OfType<string>()
            .Concat(ChildOrganisations)
            .Concat(Customers.SelectMany(c => c.ChildOrganisations.Prepend(c.OrgnrParent)));
}

/// <summary>A customer of a multi-tenant client (<c>Pit:Auth:StandIn:Clients:N:Customers:M</c>).</summary>
public sealed class StandInCustomerOptions
{
    /// <summary>The customer's legal entity (<c>orgnr_parent</c> of tokens issued for it).</summary>
    public string OrgnrParent { get; set; } = "";

    /// <summary>Sub-units of the customer the client may name (<c>orgnr_child</c>).</summary>
    public string[] ChildOrganisations { get; set; } = [];
}
