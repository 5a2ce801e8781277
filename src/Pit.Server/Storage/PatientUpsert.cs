namespace Pit.Server.Storage;

/// <summary>The current state of a Patient that a submission matched, as an engine reads it inside its transaction.</summary>
public sealed record ExistingPatient(string Id, int Version, byte[] ContentHash, long LastSequence);

/// <summary>What applying one submission does.</summary>
public enum UpsertAction
{
    /// <summary>Write a new Patient (version 1) or a new version of an existing one.</summary>
    Write,
    /// <summary>Same content as the current version: no new version, lastUpdated untouched.</summary>
    Unchanged,
    /// <summary>A later accepted submission has already been applied: last accepted wins.</summary>
    Superseded,
    /// <summary>Cannot be applied, ever.</summary>
    Fail,
}

/// <summary>The decision for one submission.</summary>
public sealed record UpsertDecision(UpsertAction Action, string? PatientId, int Version, string? Reason);

/// <summary>
/// The upsert rules, shared by every storage engine so they cannot drift apart: match by person identifier within
/// the tenant, last accepted wins, identical content creates no version.
/// </summary>
public static class PatientUpsert
{
    /// <summary>Decides what <paramref name="submission"/> does, given the distinct Patients its identifiers matched.</summary>
    public static UpsertDecision Decide(long sequence, byte[] contentHash, IReadOnlyList<ExistingPatient> matches, Func<string> newId)
    {
        if (matches.Count > 1)
        {
            return new UpsertDecision(UpsertAction.Fail, null, 0,
                "The submission's identifiers belong to more than one existing Patient of this organisation.");
        }

        if (matches.Count == 0)
        {
            return new UpsertDecision(UpsertAction.Write, newId(), 1, null);
        }

        var current = matches[0];
        if (current.LastSequence > sequence)
        {
            return new UpsertDecision(UpsertAction.Superseded, current.Id, current.Version, null);
        }

        return contentHash.AsSpan().SequenceEqual(current.ContentHash)
            ? new UpsertDecision(UpsertAction.Unchanged, current.Id, current.Version, null)
            : new UpsertDecision(UpsertAction.Write, current.Id, current.Version + 1, null);
    }

    /// <summary>A new server-assigned Patient id (32 lower-case hex digits, random).</summary>
    public static string NewPatientId() => Guid.NewGuid().ToString("N");
}
