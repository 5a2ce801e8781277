using System.Reflection;
using System.Security.Claims;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>Who is calling, as established by authentication: the tenant every data access is scoped to.</summary>
/// <param name="ClientId">HelseID client id.</param>
/// <param name="Organisation">orgnr_parent: the tenant.</param>
/// <param name="OrgnrChild">orgnr_child, when present.</param>
/// <param name="ReadsAllOrganisations">Listed in <c>Pit:Access:CrossOrganisationReaders</c>.</param>
/// <param name="ClientName">HelseID's <c>client_name</c>, when the token carries one.</param>
/// <param name="OrgnrSupplier">orgnr_supplier: the supplier of a multi-tenant client, when present. Never the tenant.</param>
internal sealed record PitCaller(
    string ClientId, string Organisation, string? OrgnrChild, bool ReadsAllOrganisations, string? ClientName = null, string? OrgnrSupplier = null)
{
    /// <summary>The tenant a search or read is limited to, or null for cross-organisation readers.</summary>
    public string? ReadScope => ReadsAllOrganisations ? null : Organisation;

    /// <summary>Whether this caller may see data of <paramref name="tenant"/>.</summary>
    public bool MayRead(string tenant) => ReadsAllOrganisations || string.Equals(tenant, Organisation, StringComparison.Ordinal);

    /// <summary>
    /// The caller of this request, read from the principal once and kept on the request. Endpoints take a
    /// <see cref="PitCaller"/> parameter and get this. Only endpoints behind <see cref="PitPolicies"/> may ask:
    /// their policies guarantee a valid organisation, so a missing one is a wiring bug (500), never a client error.
    /// </summary>
    public static PitCaller For(HttpContext context)
    {
        if (context.Features.Get<PitCaller>() is { } known)
        {
            return known;
        }

        var options = context.RequestServices.GetRequiredService<IOptions<AccessOptions>>().Value;
        var caller = FromPrincipal(context.User, options)
            ?? throw new InvalidOperationException($"{context.Request.Path} resolves a caller but is not behind a PIT policy that requires {HelseIdClaims.OrgnrParent}.");
        context.Features.Set(caller);
        return caller;
    }

    /// <summary>Minimal API parameter binding: see <see cref="For"/>.</summary>
    public static ValueTask<PitCaller?> BindAsync(HttpContext context, ParameterInfo parameter) => ValueTask.FromResult<PitCaller?>(For(context));

    /// <summary>Reads the caller from an authenticated principal; null when the organisation claim is absent.</summary>
    public static PitCaller? FromPrincipal(ClaimsPrincipal user, AccessOptions options)
    {
        var org = user.FindFirst(HelseIdClaims.OrgnrParent)?.Value;
        if (string.IsNullOrEmpty(org))
        {
            return null;
        }

        var clientId = user.FindFirst(HelseIdClaims.ClientId)?.Value ?? "unknown";
        return new PitCaller(
            clientId, org, Optional(user, HelseIdClaims.OrgnrChild), options.CrossOrganisationReaders.Contains(org),
            Optional(user, HelseIdClaims.ClientName), Optional(user, HelseIdClaims.OrgnrSupplier));
    }

    private static string? Optional(ClaimsPrincipal user, string type) => user.FindFirst(type)?.Value is { Length: > 0 } value ? value : null;
}

/// <summary>Options of section <c>Pit:Access</c>.</summary>
internal sealed class AccessOptions
{
    /// <summary>Organisation numbers whose clients may read every organisation's data. Empty by default.</summary>
    public string[] CrossOrganisationReaders { get; set; } = [];
}
