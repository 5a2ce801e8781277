namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// The SQLite schema; <c>PRAGMA user_version</c> holds its version. Migrations are append-only: never edit one that
/// has shipped, add the next one to <see cref="Migrations"/>.
/// </summary>
internal static class SqliteSchema
{
    /// <summary>The version the code expects.</summary>
    public static int Version => Migrations.Count;

    // Declared before Migrations: static initializers run in textual order.
    private static readonly string Initial = $"""
        CREATE TABLE submissions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id BLOB NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            client_id TEXT NOT NULL,
            orgnr_child TEXT,
            content BLOB,
            content_hash BLOB NOT NULL,
            keys TEXT NOT NULL,
            accepted_at INTEGER NOT NULL,
            state INTEGER NOT NULL DEFAULT {SubmissionStateSql.Queued},
            processed_at INTEGER,
            patient_id TEXT,
            patient_version INTEGER,
            reason TEXT);
        CREATE INDEX submissions_queued ON submissions(seq) WHERE state = {SubmissionStateSql.Queued};
        CREATE TABLE patients (
            id TEXT NOT NULL PRIMARY KEY,
            tenant TEXT NOT NULL,
            version INTEGER NOT NULL,
            last_updated INTEGER NOT NULL,
            content_hash BLOB NOT NULL,
            last_seq INTEGER NOT NULL,
            json BLOB NOT NULL);
        CREATE UNIQUE INDEX patients_feed ON patients(last_updated, id);
        CREATE INDEX patients_tenant_feed ON patients(tenant, last_updated, id);
        CREATE TABLE patient_keys (
            tenant TEXT NOT NULL,
            system TEXT NOT NULL,
            value TEXT NOT NULL,
            patient_id TEXT NOT NULL,
            PRIMARY KEY (tenant, system, value)) WITHOUT ROWID;
        CREATE INDEX patient_keys_patient ON patient_keys(patient_id);
        CREATE TABLE secrets (name TEXT NOT NULL PRIMARY KEY, value BLOB NOT NULL);
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            client_id TEXT NOT NULL,
            organisation TEXT NOT NULL,
            orgnr_child TEXT,
            submission_id TEXT,
            patient_ids TEXT,
            status INTEGER NOT NULL,
            outcome TEXT NOT NULL);
        CREATE INDEX audit_log_organisation ON audit_log(organisation, id);
        """;

    /// <summary>
    /// Version 2: indexes for retention and export: audit entries by time (and per organisation by time), processed
    /// submissions by processing time.
    /// </summary>
    public static readonly string RetentionIndexes = $"""
        DROP INDEX audit_log_organisation;
        CREATE INDEX audit_log_at ON audit_log(at);
        CREATE INDEX audit_log_organisation_at ON audit_log(organisation, at);
        {StoredRows.ProcessedSubmissionsIndex}
        """;

    /// <summary>The migrations in order: index 0 takes the schema to version 1, and so on.</summary>
    public static IReadOnlyList<string> Migrations { get; } =
    [
        Initial,
        RetentionIndexes,
        // Version 3: the submitting client's name, for the provenance of the version it creates.
        "ALTER TABLE submissions ADD COLUMN client_name TEXT;",
    ];
}
