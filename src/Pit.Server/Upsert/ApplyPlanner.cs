using System.Security.Cryptography;

namespace Pit.Server.Upsert;

/// <summary>
/// The upsert rules, the same for every storage engine: match by person identifier within the tenant, last accepted
/// wins, identical content creates no version, identifiers of two Patients fail. A pure function from a batch of
/// submissions (in acceptance order) and the stored Patients their identifiers point at to a plan of writes; engines
/// only look up, lock and execute the plan.
/// <para>
/// Each submission sees the ones before it in the batch. Only the final version of a Patient is written, so
/// versions superseded inside one batch never become visible; their lastUpdated values are simply skipped.
/// </para>
/// </summary>
internal static class ApplyPlanner
{
    /// <summary>The reason of a submission whose identifiers match two Patients.</summary>
    public const string AmbiguousReason = "The submission's identifiers belong to more than one existing Patient of this organisation.";

    /// <summary>
    /// Plans <paramref name="batch"/> against <paramref name="existing"/>; <paramref name="clock"/> is the store's
    /// highest lastUpdated, read under the engine's feed lock. Each write gets <see cref="FeedTime.Next"/>, so
    /// lastUpdated is strictly increasing whatever the wall clock does. (PostgreSQL writes versions unstamped and its
    /// sequencer replaces this value: see PostgresSequencer.) A new Patient's id comes from <paramref name="newId"/>,
    /// by default <see cref="PatientIdFor(Guid)"/> of the submission that creates it.
    /// </summary>
    public static ApplyPlan Plan(
        IReadOnlyList<PendingSubmission> batch, IEnumerable<ExistingPatient> existing, long clock, TimeProvider time,
        Func<PendingSubmission, string>? newId = null)
    {
        newId ??= s => PatientIdFor(s.Taken.Id);
        var picture = new Picture(existing);
        var outcomes = new List<SubmissionOutcome>(batch.Count);
        foreach (var s in batch)
        {
            var now = FeedTime.FromDateTimeOffset(time.GetUtcNow());
            try
            {
                outcomes.Add(Decide(s, picture, ref clock, now, newId));
            }
            catch (Exception ex) when (IsAboutSubmission(ex))
            {
                // Type names only: exception messages may quote health data.
                outcomes.Add(new SubmissionOutcome(s.Sequence, SubmissionState.Failed, now, null, null, $"Processing failed: {ex.GetType().Name}.", ex));
            }
        }

        var writes = picture.Patients.Values.Where(p => p.Json is not null)
            .Select(p => new PatientWrite(p.Id, p.Tenant, p.Version, p.LastUpdated, p.Hash, p.LastSequence, p.Json!, [.. p.Keys]))
            .ToList();
        var touches = picture.Patients.Values.Where(p => p.Json is null && p.SequenceTouched)
            .Select(p => new SequenceTouch(p.Id, p.LastSequence))
            .ToList();
        return new ApplyPlan(outcomes, writes, touches, clock);
    }

    /// <summary>
    /// Whether <paramref name="ex"/>, thrown while deciding or composing one submission, may be charged to that
    /// submission. A process short of memory or shutting down says nothing about the submission: those propagate, the
    /// whole batch rolls back, and every submission in it stays queued for a later batch. Marking them failed would
    /// lose submissions already answered 202.
    /// </summary>
    public static bool IsAboutSubmission(Exception ex) =>
        ex is not (OutOfMemoryException or OperationCanceledException or ThreadInterruptedException);

    /// <summary>A new server-assigned Patient id (32 lower-case hex digits, random), for rows written outside the queue.</summary>
    public static string NewPatientId() => Guid.NewGuid().ToString("N");

    /// <summary>
    /// The id of the Patient that submission <paramref name="submissionId"/> creates: 32 lower-case hex digits, the
    /// first half of SHA-256 over a fixed label and the submission id. Derived rather than drawn, so that applying the
    /// same submission again (SQLite's apply commits without an fsync, and a power loss can undo it: docs/OPERATIONS.md)
    /// writes the same Patient under the same id; hashed, so that the id does not reveal the submission id or its
    /// acceptance time (submission ids are UUIDv7).
    /// </summary>
    public static string PatientIdFor(Guid submissionId)
    {
        Span<byte> input = stackalloc byte[PatientIdLabel.Length + 16];
        PatientIdLabel.CopyTo(input);
        submissionId.TryWriteBytes(input[PatientIdLabel.Length..], bigEndian: true, out _);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, hash);
        return Convert.ToHexStringLower(hash[..16]);
    }

    private static ReadOnlySpan<byte> PatientIdLabel => "pit:patient-id:v1:"u8;

    private static SubmissionOutcome Decide(PendingSubmission s, Picture picture, ref long clock, long now, Func<PendingSubmission, string> newId)
    {
        var keys = s.Keys.Distinct().ToList();
        var matched = new List<PatientState>(1);
        foreach (var key in keys)
        {
            if (picture.Owners.TryGetValue((s.Tenant, key), out var owner) && !matched.Contains(owner))
            {
                matched.Add(owner);
            }
        }

        if (matched.Count > 1)
        {
            return new SubmissionOutcome(s.Sequence, SubmissionState.Failed, now, null, null, AmbiguousReason);
        }

        var current = matched.Count == 1 ? matched[0] : null;
        if (current is not null && current.LastSequence > s.Sequence)
        {
            return new SubmissionOutcome(s.Sequence, SubmissionState.Superseded, now, current.Id, current.Version, null);
        }

        if (current is not null && s.ContentHash.AsSpan().SequenceEqual(current.Hash))
        {
            current.LastSequence = Math.Max(current.LastSequence, s.Sequence);
            current.SequenceTouched = true;
            return new SubmissionOutcome(s.Sequence, SubmissionState.Unchanged, now, current.Id, current.Version, null);
        }

        var id = current?.Id ?? newId(s);
        var version = (current?.Version ?? 0) + 1;
        var lastUpdated = FeedTime.Next(now, clock);

        // Compose first: if it throws, nothing in the picture has changed.
        var json = PatientJson.Compose(s.Content, id, version, lastUpdated, s.Tenant, s.Provenance);
        var patient = current ?? picture.Add(id, s.Tenant);
        picture.ReplaceKeys(patient, keys);
        patient.Version = version;
        patient.Hash = s.ContentHash;
        patient.LastSequence = s.Sequence;
        patient.LastUpdated = lastUpdated;
        patient.Json = json;
        clock = lastUpdated;
        return new SubmissionOutcome(s.Sequence, SubmissionState.Applied, now, id, version, null);
    }

    /// <summary>The Patients as the batch sees them: loaded, then changed by the batch in acceptance order.</summary>
    private sealed class Picture
    {
        public Picture(IEnumerable<ExistingPatient> existing)
        {
            foreach (var e in existing)
            {
                var patient = Add(e.Id, e.Tenant);
                patient.Version = e.Version;
                patient.Hash = e.ContentHash;
                patient.LastSequence = e.LastSequence;
                ReplaceKeys(patient, e.Keys);
            }
        }

        public Dictionary<string, PatientState> Patients { get; } = new(StringComparer.Ordinal);

        /// <summary>Which Patient each (tenant, identifier) belongs to.</summary>
        public Dictionary<(string Tenant, PatientKey Key), PatientState> Owners { get; } = [];

        public PatientState Add(string id, string tenant)
        {
            var patient = new PatientState(id, tenant);
            Patients.Add(id, patient);
            return patient;
        }

        public void ReplaceKeys(PatientState patient, IEnumerable<PatientKey> keys)
        {
            foreach (var old in patient.Keys)
            {
                Owners.Remove((patient.Tenant, old));
            }

            patient.Keys.Clear();
            patient.Keys.AddRange(keys);
            foreach (var key in patient.Keys)
            {
                Owners[(patient.Tenant, key)] = patient;
            }
        }
    }

    private sealed class PatientState(string id, string tenant)
    {
        public string Id { get; } = id;
        public string Tenant { get; } = tenant;
        public List<PatientKey> Keys { get; } = [];
        public int Version { get; set; }
        public byte[] Hash { get; set; } = [];
        public long LastSequence { get; set; }
        public long LastUpdated { get; set; }

        /// <summary>Set when the batch wrote a new version.</summary>
        public byte[]? Json { get; set; }

        public bool SequenceTouched { get; set; }
    }
}
