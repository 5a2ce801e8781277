using Pit.Server.Upsert;

namespace Pit.Server.Storage;

// The storage engines' contract, one interface per concern. Every engine implements all of them in its own folder
// (Sqlite/, Postgres/) and passes the same contract tests (tests/Pit.Server.Tests/Storage). Times are microseconds
// since the Unix epoch (UTC) throughout.

/// <summary>The schema.</summary>
internal interface IStoreMigrator
{
    /// <summary>Creates or migrates the schema. Safe to call from several processes at once.</summary>
    Task MigrateAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Where the store is, for messages: the SQLite file's full path, or PostgreSQL's host, port and database (never
    /// a password).
    /// </summary>
    string Location { get; }

    /// <summary>The schema version the store is at and the one this build needs; changes nothing.</summary>
    Task<SchemaVersion> GetSchemaVersionAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A store's schema version (<paramref name="Current"/>, 0 for an empty store) and the one this build needs
/// (<paramref name="Required"/>). Migrations only add, so a build runs on a schema at or above its own version.
/// </summary>
internal readonly record struct SchemaVersion(int Current, int Required)
{
    /// <summary>Whether this build can run on the store as it is.</summary>
    public bool IsCurrent => Current >= Required;
}

/// <summary>The durable queue of accepted submissions, and applying it to the Patient feed.</summary>
internal interface ISubmissionQueueStore
{
    /// <summary>
    /// Stores the batch durably in one transaction (group commit) and returns only after it has committed.
    /// Each submission gets the next acceptance sequence number in list order.
    /// </summary>
    Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken);

    /// <summary>The submission with this id, or null.</summary>
    Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>How many submissions wait to be applied, and when the oldest of them was accepted.</summary>
    Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Applies up to <paramref name="maxCount"/> pending submissions in acceptance order, and no more than
    /// <paramref name="maxBytes"/> of their content (but always at least one), each in effect exactly
    /// once: the submission is marked done (or failed) in the same transaction that writes the Patient.
    /// What each submission does is decided by <see cref="ApplyPlanner"/>; the engine only looks up,
    /// locks and writes the plan. <c>lastUpdated</c> values are assigned strictly increasing in commit order across
    /// the whole store, so a reader that has seen every row up to some <c>lastUpdated</c> can never later see a row
    /// below it: by this apply (SQLite), or by the engine's sequencer after it (PostgreSQL,
    /// <see cref="AppliedBatch.StampedLater"/>), in which case the versions and the submissions' outcomes become
    /// visible only then. Returns what was taken (applied, unchanged, superseded or failed), with each one's id and
    /// acceptance time.
    /// </summary>
    Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken);
}

internal static class SubmissionQueueStoreExtensions
{
    /// <summary>Applies up to <paramref name="maxCount"/> pending submissions, whatever their size.</summary>
    public static Task<AppliedBatch> ApplyPendingAsync(this ISubmissionQueueStore store, int maxCount, CancellationToken cancellationToken) =>
        store.ApplyPendingAsync(maxCount, long.MaxValue, cancellationToken);
}

/// <summary>The Patient feed: current versions, by id and in keyset pages.</summary>
internal interface IPatientFeedStore
{
    /// <summary>The current version of the Patient, or null.</summary>
    Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken);

    /// <summary>
    /// One keyset page of current Patient versions, ordered by (lastUpdated, id) ascending or descending,
    /// at most <see cref="PatientPageQuery.Limit"/> rows and <see cref="PatientPageQuery.MaxBytes"/> bytes of JSON
    /// (the first row whatever its size), and whether rows follow. Cost must not grow with the depth of the page, and
    /// the JSON of a row that does not fit is never loaded: memory is bounded by the cap plus one row.
    /// </summary>
    Task<PatientPage> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken);
}

/// <summary>Secrets shared by every instance over one store.</summary>
internal interface ISharedSecretStore
{
    /// <summary>
    /// A secret shared by all instances over this store: created with <paramref name="create"/> the first time,
    /// returned unchanged afterwards (the first writer wins when several race).
    /// </summary>
    Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken);
}

/// <summary>The audit log.</summary>
internal interface IAuditStore
{
    /// <summary>Appends audit entries (batched by the caller).</summary>
    Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken);

    /// <summary>Audit entries newest first (by time, then by order of writing), optionally for one organisation.</summary>
    Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken);
}

/// <summary>The audit log in full, for the data protection officer (<c>audit-export</c>).</summary>
internal interface IAuditExportStore
{
    /// <summary>
    /// Every audit entry with <paramref name="from"/> &lt;= at &lt; <paramref name="to"/>, optionally for one
    /// organisation, oldest first, streamed (never all held in memory).
    /// </summary>
    IAsyncEnumerable<AuditEntry> ExportAuditAsync(long from, long to, string? organisation, CancellationToken cancellationToken);
}

/// <summary>Keeping stored history within its retention, off the request path (see Storage/StoreRetention.cs).</summary>
internal interface IRetentionStore
{
    /// <summary>
    /// Gets the audit log ready for entries from <paramref name="from"/> to <paramref name="to"/> (PostgreSQL creates
    /// the day partitions ahead, moving any rows the default partition caught; SQLite needs nothing). Safe to call from
    /// several instances at once.
    /// </summary>
    Task PrepareAuditAsync(long from, long to, CancellationToken cancellationToken);

    /// <summary>
    /// Removes audit entries older than <paramref name="before"/>: at most <paramref name="maxRows"/> rows deleted by
    /// one statement (PostgreSQL also drops whole day partitions that lie entirely before it). Returns the rows
    /// deleted by statement, so the caller repeats while it gets <paramref name="maxRows"/>.
    /// </summary>
    Task<int> RemoveAuditBeforeAsync(long before, int maxRows, CancellationToken cancellationToken);

    /// <summary>
    /// Deletes at most <paramref name="maxRows"/> processed (not queued) submissions processed before
    /// <paramref name="before"/>; their status then reads as unknown. Returns how many were deleted.
    /// </summary>
    Task<int> RemoveProcessedSubmissionsBeforeAsync(long before, int maxRows, CancellationToken cancellationToken);
}

/// <summary>Whether the store can be reached (the readiness check).</summary>
internal interface IStoreHealth
{
    /// <summary>Throws when the store cannot be reached.</summary>
    Task CheckHealthAsync(CancellationToken cancellationToken);
}
