namespace Pit.Server.Auth;

/// <summary>Claim types as HelseID issues them.</summary>
public static class HelseIdClaims
{
    public const string ClientId = "client_id";
    public const string OrgnrParent = "helseid://claims/client/claims/orgnr_parent";
    public const string OrgnrChild = "helseid://claims/client/claims/orgnr_child";
    public const string OrgnrSupplier = "helseid://claims/client/claims/orgnr_supplier";
    public const string ClientName = "helseid://claims/client/client_name";
    public const string Scope = "scope";
}
