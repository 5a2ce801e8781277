namespace Pit.Server.Upsert;

/// <summary>A person identifier (system and value) used to find an existing Patient within a tenant.</summary>
internal readonly record struct PatientKey(string System, string Value);

/// <summary>Where a submission is in its life.</summary>
internal enum SubmissionState
{
    /// <summary>Accepted and durable, not processed yet.</summary>
    Queued = 0,
    /// <summary>Processed: a new Patient version was written.</summary>
    Applied = 1,
    /// <summary>Processed: content equal to the current version, nothing written.</summary>
    Unchanged = 2,
    /// <summary>Processed: a later accepted submission for the same Patient had already been applied.</summary>
    Superseded = 3,
    /// <summary>Could not be applied; the stored submission carries the reason.</summary>
    Failed = 4,
}

/// <summary>
/// A submission that an apply batch took off the queue: its id, acceptance time (microseconds) and tenant (whose feed
/// waiters are woken after the commit).
/// </summary>
internal readonly record struct TakenSubmission(Guid Id, long AcceptedAt, string Tenant);
