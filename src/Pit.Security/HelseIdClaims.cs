namespace Pit.Security;

/// <summary>Claim types as HelseID issues them in client-credentials access tokens.</summary>
public static class HelseIdClaims
{
    /// <summary>The HelseID client id.</summary>
    public const string ClientId = "client_id";

    /// <summary>Legal entity (9-digit organisation number): the tenant.</summary>
    public const string OrgnrParent = "helseid://claims/client/claims/orgnr_parent";

    /// <summary>Sub-unit organisation number, optional.</summary>
    public const string OrgnrChild = "helseid://claims/client/claims/orgnr_child";

    /// <summary>Supplier organisation number of multi-tenant clients.</summary>
    public const string OrgnrSupplier = "helseid://claims/client/claims/orgnr_supplier";

    /// <summary><c>single-tenant</c> or <c>multi-tenant</c>.</summary>
    public const string ClientTenancy = "helseid://claims/client/client_tenancy";

    /// <summary>The client's display name.</summary>
    public const string ClientName = "helseid://claims/client/client_name";

    /// <summary>How the client authenticated (for example <c>rsa_private_key</c>).</summary>
    public const string ClientAmr = "helseid://claims/client/amr";

    /// <summary>Granted scopes: a JSON array in HelseID tokens, or a space-separated string.</summary>
    public const string Scope = "scope";
}
