using Hl7.Fhir.Model;

namespace Pit.Client;

/// <summary>Where a submission is: still queued, processed into a Patient, or failed.</summary>
public enum SubmissionState
{
    /// <summary>Accepted, not processed yet (the status URL answers 202).</summary>
    Pending,

    /// <summary>Processed; <see cref="SubmissionStatus.PatientId"/> names the Patient.</summary>
    Completed,

    /// <summary>Could not be applied; <see cref="SubmissionStatus.Outcome"/> says why.</summary>
    Failed,
}

/// <summary>The answer of a submission's status URL.</summary>
/// <param name="StatusUrl">The status URL asked.</param>
/// <param name="State">Pending, completed or failed.</param>
/// <param name="PatientId">The resulting Patient's id when completed and the server named it.</param>
/// <param name="Outcome">The server's OperationOutcome, when it sent one.</param>
public sealed record SubmissionStatus(Uri StatusUrl, SubmissionState State, string? PatientId, OperationOutcome? Outcome)
{
    /// <summary>One line per issue of <see cref="Outcome"/>: severity, code, text and location.</summary>
    public IReadOnlyList<string> IssueLines => FhirJson.DescribeIssues(Outcome);
}
