using System.Collections.Frozen;

namespace Pit.Server.Upsert;

/// <summary>
/// Who submitted one stored Patient version, as established by authentication when the submission was accepted;
/// never taken from the submitted body. <see cref="PatientJson.Compose"/> writes it as <c>meta.extension</c> entries
/// (<see cref="ProvenanceExtensions"/>).
/// </summary>
/// <param name="SubmissionId">The submission that created the version.</param>
/// <param name="Organisation">orgnr_parent: the submitting (acting) organisation, the tenant.</param>
/// <param name="OrgnrChild">orgnr_child: the submitting sub-unit, when the token carried one.</param>
/// <param name="ClientId">The submitting HelseID client.</param>
/// <param name="ClientName">HelseID's client name, when the token carried a non-empty one.</param>
internal sealed record SubmissionProvenance(Guid SubmissionId, string Organisation, string? OrgnrChild, string ClientId, string? ClientName);

/// <summary>
/// The provenance extensions on every stored Patient version, under this server's own URL namespace. Each carries a
/// <c>valueString</c>; the optional ones are absent when the token had no such claim. Clients may not send them.
/// </summary>
internal static class ProvenanceExtensions
{
    /// <summary>The server's StructureDefinition namespace; every provenance URL starts with it.</summary>
    public const string Namespace = "https://pit.nhn.no/fhir/StructureDefinition/";

    /// <summary>orgnr_parent of the submitting organisation (9 digits).</summary>
    public const string ParentOrganizationNumber = Namespace + "parent-organization-number";

    /// <summary>orgnr_child of the submitting sub-unit (9 digits), when present.</summary>
    public const string ChildOrganizationNumber = Namespace + "child-organization-number";

    /// <summary>The submitting HelseID client_id.</summary>
    public const string SourceClientId = Namespace + "source-client-id";

    /// <summary>The submitting HelseID client's name, when the token carried one.</summary>
    public const string SourceClientName = Namespace + "source-client-name";

    /// <summary>The id of the submission that created the version (as in <c>/v1/submissions/{id}</c>).</summary>
    public const string SubmissionId = Namespace + "submission-id";

    /// <summary>One sentence for the CapabilityStatement and the OpenAPI document.</summary>
    public const string Description =
        "Every stored version names who submitted it in meta.extension (valueString), set by the server from the access token: " +
        ParentOrganizationNumber + " (orgnr_parent), " + ChildOrganizationNumber + " (orgnr_child, when present), " +
        SourceClientId + " (client_id), " + SourceClientName + " (client name, when present) and " + SubmissionId +
        " (the submission). A submitted Patient carrying any of these extensions is refused with 400.";

    /// <summary>Every provenance URL.</summary>
    public static FrozenSet<string> All { get; } =
        new[] { ParentOrganizationNumber, ChildOrganizationNumber, SourceClientId, SourceClientName, SubmissionId }.ToFrozenSet(StringComparer.Ordinal);
}
