using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Pit.HelseIdStandIn;

/// <summary>
/// The organisations a token is issued for: what the client assertion's <c>authorization_details</c> asks for,
/// checked against what the client is registered to serve, as HelseID does for client-credentials requests.
/// </summary>
/// <param name="OrgnrParent">The legal entity (<c>orgnr_parent</c>).</param>
/// <param name="OrgnrChild">The sub-unit (<c>orgnr_child</c>), when one was asked for or configured.</param>
/// <param name="OrgnrSupplier">The supplier (<c>orgnr_supplier</c>) of a multi-tenant client.</param>
internal sealed record OrganisationGrant(string OrgnrParent, string? OrgnrChild, string? OrgnrSupplier)
{
    /// <summary>ISO 6523 identifier scheme: value <c>NO:ORGNR:parent[:child]</c>.</summary>
    public const string Iso6523System = "urn:oid:1.0.6523";

    /// <summary>Enhetsregisteret as HelseID names it for a single-tenant client's sub-unit: value the child's number.</summary>
    public const string ChildUnitSystem = "urn:oid:2.16.578.1.12.4.1.2.101";

    private const string DetailType = "helseid_authorization";
    private const string OrgnrPrefix = "NO:ORGNR:";

    /// <summary>The grant, or an OAuth error code and description when the request cannot be served.</summary>
    public static (OrganisationGrant? Grant, string? Error, string? Description) Resolve(StandInClientOptions client, JsonWebToken assertion)
    {
        var (identifier, malformed) = RequestedIdentifier(assertion);
        if (malformed is not null)
        {
            return Invalid(malformed);
        }

        return client.Tenancy == StandInTenancy.MultiTenant ? ForMultiTenant(client, identifier) : ForSingleTenant(client, identifier);
    }

    private static (OrganisationGrant?, string?, string?) ForSingleTenant(StandInClientOptions client, Identifier? identifier)
    {
        var parent = client.OrgnrParent!;
        if (identifier is null)
        {
            return (new OrganisationGrant(parent, client.OrgnrChild, null), null, null);
        }

        string? child;
        if (identifier.System == ChildUnitSystem)
        {
            if (!IsNineDigits(identifier.Value))
            {
                return Invalid($"the {ChildUnitSystem} identifier must be a 9-digit organisation number");
            }

            child = identifier.Value;
        }
        else
        {
            var (requestedParent, requestedChild) = identifier.Parts!.Value;
            if (requestedParent != parent)
            {
                return Unauthorized($"this single-tenant client belongs to organisation {parent} and cannot act for {requestedParent}");
            }

            child = requestedChild;
        }

        if (child is not null && child != client.OrgnrChild && !client.ChildOrganisations.Contains(child, StringComparer.Ordinal))
        {
            return Unauthorized($"organisation {child} is not a sub-unit this client is registered for under {parent}");
        }

        return (new OrganisationGrant(parent, child, null), null, null);
    }

    private static (OrganisationGrant?, string?, string?) ForMultiTenant(StandInClientOptions client, Identifier? identifier)
    {
        if (identifier is null)
        {
            return Invalid($"a multi-tenant client must name the organisation it acts for: authorization_details of type {DetailType} " +
                $"with identifier system {Iso6523System} and value {OrgnrPrefix}<parent>[:<child>]");
        }

        if (identifier.System == ChildUnitSystem)
        {
            return Invalid($"identifier system {ChildUnitSystem} is for single-tenant clients; a multi-tenant client uses {Iso6523System}");
        }

        var (parent, child) = identifier.Parts!.Value;
        var customer = client.Customers.FirstOrDefault(c => c.OrgnrParent == parent);
        if (customer is null)
        {
            return Unauthorized($"organisation {parent} has not delegated access to this client's supplier {client.OrgnrSupplier}");
        }

        if (child is not null && !customer.ChildOrganisations.Contains(child, StringComparer.Ordinal))
        {
            return Unauthorized($"organisation {child} is not a sub-unit this client is registered for under {parent}");
        }

        return (new OrganisationGrant(parent, child, client.OrgnrSupplier), null, null);
    }

    /// <summary>The one <c>helseid_authorization</c> identifier asked for, none, or why the request is malformed.</summary>
    private static (Identifier? Identifier, string? Malformed) RequestedIdentifier(JsonWebToken assertion)
    {
        if (!assertion.TryGetPayloadValue<JsonElement>("authorization_details", out var details))
        {
            return (null, null);
        }

        // RFC 9396 sends an array; HelseID's own examples send a single object. Both are accepted.
        var entries = details.ValueKind switch
        {
            JsonValueKind.Array => [.. details.EnumerateArray()],
            JsonValueKind.Object => new List<JsonElement> { details },
            _ => null,
        };
        if (entries is null || entries.Any(e => e.ValueKind != JsonValueKind.Object))
        {
            return (null, "authorization_details must be an object or an array of objects");
        }

        var ours = entries.Where(e => Text(e, "type") == DetailType).ToList();
        if (ours.Count != entries.Count)
        {
            return (null, $"authorization_details may only hold entries of type {DetailType}");
        }

        if (ours.Count == 0)
        {
            return (null, null);
        }

        if (ours.Count > 1)
        {
            return (null, $"authorization_details holds more than one {DetailType} entry");
        }

        var identifier = Member(Member(Member(ours[0], "practitioner_role"), "organization"), "identifier");
        var system = identifier is { } i ? Text(i, "system") : null;
        var value = identifier is { } j ? Text(j, "value") : null;
        if (system is null || value is null)
        {
            return (null, "authorization_details needs practitioner_role.organization.identifier with system and value");
        }

        if (Text(identifier!.Value, "type") is { } type && type != "ENH")
        {
            return (null, "the organisation identifier's type must be ENH");
        }

        return system switch
        {
            ChildUnitSystem => (new Identifier(system, value, null), null),
            Iso6523System when ParseIso6523(value) is { } parts => (new Identifier(system, value, parts), null),
            Iso6523System => (null, $"identifier value '{value}' is not {OrgnrPrefix}<9 digits>[:<9 digits>]"),
            _ => (null, $"identifier system must be {Iso6523System} or {ChildUnitSystem}"),
        };
    }

    private static (string Parent, string? Child)? ParseIso6523(string value)
    {
        if (!value.StartsWith(OrgnrPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var parts = value[OrgnrPrefix.Length..].Split(':');
        return parts.Length <= 2 && parts.All(IsNineDigits) ? (parts[0], parts.Length == 2 ? parts[1] : null) : null;
    }

    private static bool IsNineDigits(string value) => value.Length == 9 && value.All(char.IsAsciiDigit);

    private static JsonElement? Member(JsonElement? element, string name) =>
        element is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty(name, out var child) ? child : null;

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static (OrganisationGrant?, string?, string?) Invalid(string description) => (null, "invalid_request", description);

    private static (OrganisationGrant?, string?, string?) Unauthorized(string description) => (null, "unauthorized_client", description);

    private sealed record Identifier(string System, string Value, (string Parent, string? Child)? Parts);
}
