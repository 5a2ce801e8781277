namespace Pit.Server.Upsert;

/// <summary>
/// A queued submission as an engine hands it to <see cref="ApplyPlanner"/>; <see cref="Provenance"/> is who submitted
/// it (engines always set it; only planner unit tests leave it out).
/// </summary>
internal sealed record PendingSubmission(
    long Sequence, string Tenant, byte[] Content, byte[] ContentHash, IReadOnlyList<PatientKey> Keys, TakenSubmission Taken = default,
    SubmissionProvenance? Provenance = null);

/// <summary>A stored Patient that one of the batch's identifiers points at, with all of its identifiers.</summary>
internal sealed record ExistingPatient(string Id, string Tenant, int Version, byte[] ContentHash, long LastSequence, IReadOnlyList<PatientKey> Keys);

/// <summary>The final state of one Patient the batch wrote: upsert the row and replace its identifiers.</summary>
internal sealed record PatientWrite(
    string Id, string Tenant, int Version, long LastUpdated, byte[] ContentHash, long LastSequence, byte[] Json, IReadOnlyList<PatientKey> Keys)
{
    /// <summary>
    /// False for a Patient this batch created (version 1): its new id can have no stored identifiers, so there are none
    /// to delete. Most writes are new Patients, and the delete would otherwise be a lookup per write for nothing.
    /// </summary>
    public bool MayHaveStoredKeys => Version > 1;
}

/// <summary>A Patient the batch did not write but whose last applied sequence rose (identical content).</summary>
internal readonly record struct SequenceTouch(string PatientId, long LastSequence);

/// <summary>
/// What happens to one submission. <see cref="Error"/> is set when deciding or composing it threw: the engine's
/// failure policy then decides between retrying it and ending it as <see cref="SubmissionState.Failed"/>.
/// </summary>
internal sealed record SubmissionOutcome(
    long Sequence, SubmissionState State, long ProcessedAt, string? PatientId, int? Version, string? Reason, Exception? Error = null);

/// <summary>
/// The writes of one apply transaction: an outcome per submission (in acceptance order), the final state of each
/// Patient written, the Patients only touched, and the feed clock after the batch (the highest lastUpdated).
/// </summary>
internal sealed record ApplyPlan(
    IReadOnlyList<SubmissionOutcome> Outcomes, IReadOnlyList<PatientWrite> Writes, IReadOnlyList<SequenceTouch> Touches, long Clock);
