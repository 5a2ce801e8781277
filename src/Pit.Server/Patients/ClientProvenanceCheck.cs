using Hl7.Fhir.Model;
using Pit.Server.Fhir;
using Pit.Server.Upsert;

namespace Pit.Server.Patients;

/// <summary>
/// Refuses a submitted Patient that carries one of the server's provenance extensions (<see cref="ProvenanceExtensions"/>)
/// at resource level or in <c>meta.extension</c>, nested ones included: provenance comes from the token alone, and a
/// client-supplied copy would only mislead a reader of the submitted body.
/// </summary>
internal static class ClientProvenanceCheck
{
    /// <summary>An issue per offending extension, each naming its location (e.g. <c>Patient.meta.extension[0]</c>).</summary>
    public static OperationOutcome? Check(Patient patient)
    {
        var issues = new List<OperationOutcome.IssueComponent>();
        Collect(patient.Extension, "Patient.extension", issues);
        Collect(patient.ModifierExtension, "Patient.modifierExtension", issues);
        Collect(patient.Meta?.Extension, "Patient.meta.extension", issues);
        return issues.Count == 0 ? null : new OperationOutcome { Issue = issues };
    }

    private static void Collect(IReadOnlyList<Extension>? extensions, string path, List<OperationOutcome.IssueComponent> issues)
    {
        for (var i = 0; i < (extensions?.Count ?? 0); i++)
        {
            var extension = extensions![i];
            var location = $"{path}[{i}]";
            if (extension.Url is { } url && ProvenanceExtensions.All.Contains(url))
            {
                issues.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.BusinessRule,
                    $"{location}: the extension {url} is set by the server from the access token and may not be submitted.", location));
            }

            Collect(extension.Extension, $"{location}.extension", issues);
        }
    }
}
