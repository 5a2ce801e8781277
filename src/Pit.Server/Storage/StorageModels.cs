using Pit.Server.Upsert;

namespace Pit.Server.Storage;

/// <summary>An accepted, validated submission waiting to be stored.</summary>
/// <param name="Id">Server-assigned submission id.</param>
/// <param name="Tenant">The submitting organisation (orgnr_parent).</param>
/// <param name="ClientId">The submitting client.</param>
/// <param name="OrgnrChild">The submitting sub-unit, when the token carried one.</param>
/// <param name="Content">Canonical Patient JSON without id and meta .</param>
/// <param name="ContentHash">SHA-256 of <paramref name="Content"/>.</param>
/// <param name="Keys">The person identifiers, used to match an existing Patient.</param>
/// <param name="AcceptedAt">Acceptance time, microseconds since the epoch.</param>
/// <param name="ClientName">The submitting client's HelseID client name, when the token carried a non-empty one.</param>
internal sealed record NewSubmission(
    Guid Id, string Tenant, string ClientId, string? OrgnrChild,
    byte[] Content, byte[] ContentHash, IReadOnlyList<PatientKey> Keys, long AcceptedAt, string? ClientName = null);

/// <summary>The submission states as SQL literals, for the engines' statements (the column holds the enum's number).</summary>
internal static class SubmissionStateSql
{
    /// <summary>Accepted, waiting to be applied.</summary>
    public static readonly string Queued = Literal(SubmissionState.Queued);

    /// <summary>
    /// The stored content after a row takes the state <paramref name="state"/>: kept while queued and when failed (for
    /// diagnosis), dropped once processed: the Patient row holds what is needed, and less health data lies about.
    /// </summary>
    public static string RetainedContent(string state, string content) =>
        $"CASE WHEN {state} IN ({Queued}, {Literal(SubmissionState.Failed)}) THEN {content} END";

    /// <summary>
    /// The <c>seq</c> of the rows of <paramref name="candidates"/> (a query of <c>seq</c> and <c>size</c>, in
    /// acceptance order) whose content adds up to at most <paramref name="maxBytes"/>, and always the first: a batch
    /// never holds more than the byte bound in memory unless one submission alone is larger. Sizes come from the row
    /// header (SQLite) or the TOAST pointer (PostgreSQL), so the rows left out are never read.
    /// </summary>
    public static string ClaimWithinBytes(string candidates, string maxBytes) => $"""
        SELECT seq FROM (
            SELECT seq, sum(size) OVER (ORDER BY seq) AS upto, row_number() OVER (ORDER BY seq) AS n FROM ({candidates}) c
        ) w WHERE n = 1 OR upto <= {maxBytes}
        """;

    private static string Literal(SubmissionState state) => ((int)state).ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>The queue as operators watch it (metrics, readiness).</summary>
/// <param name="Pending">Submissions accepted and not yet applied (including those waiting for a retry).</param>
/// <param name="OldestPendingAcceptedAt">Acceptance time of the oldest pending submission; null when none is pending.</param>
internal sealed record QueueStatistics(long Pending, long? OldestPendingAcceptedAt);

/// <summary>What one apply batch took off the queue, in acceptance order.</summary>
internal sealed record AppliedBatch(IReadOnlyList<TakenSubmission> Taken)
{
    /// <summary>Nothing was pending.</summary>
    public static AppliedBatch Empty { get; } = new([]);

    /// <summary>Submissions taken (applied, unchanged, superseded or failed).</summary>
    public int Count => Taken.Count;

    /// <summary>
    /// True when the batch's versions are not visible yet at its commit: PostgreSQL's sequencer stamps them later and
    /// wakes the feed's waiters itself. False (SQLite): the apply stamped them, and its caller wakes the waiters.
    /// </summary>
    public bool StampedLater { get; init; }
}

/// <summary>A stored submission and its outcome.</summary>
internal sealed record SubmissionRecord(
    Guid Id, string Tenant, long Sequence, SubmissionState State, long AcceptedAt, long? ProcessedAt,
    string? PatientId, int? PatientVersion, string? Reason);

/// <summary>The current version of a stored Patient; <see cref="Json"/> is ready to send.</summary>
internal sealed record PatientRecord(string Id, string Tenant, int Version, long LastUpdated, byte[] Json);

/// <summary>
/// One keyset page. Bounds are on lastUpdated in microseconds: <see cref="From"/> inclusive, <see cref="To"/>
/// exclusive. <see cref="After"/> is the (lastUpdated, id) of the last row already returned, in the sort direction.
/// A page holds at most <see cref="Limit"/> rows, and rows whose JSON comes to at most <see cref="MaxBytes"/> bytes
/// in total; its first row is returned whatever its size, so a Patient larger than the cap is served alone.
/// </summary>
internal sealed record PatientPageQuery(
    string? Tenant, bool Descending, long? From, long? To, PagePosition? After, int Limit, long MaxBytes = long.MaxValue);

/// <summary>
/// The rows of one keyset page, in order, and whether more rows follow the last of them (cut by the count or by the
/// byte cap), so the caller knows to give a <c>next</c> link.
/// </summary>
internal sealed record PatientPage(IReadOnlyList<PatientRecord> Rows, bool More);

/// <summary>The position of a row in the feed.</summary>
internal readonly record struct PagePosition(long LastUpdated, string Id);

/// <summary>One audit log line. Never holds tokens, proofs or identity numbers.</summary>
internal sealed record AuditEntry(
    long At, string Action, string ClientId, string Organisation, string? OrgnrChild,
    Guid? SubmissionId, string? PatientIds, int Status, string Outcome);
