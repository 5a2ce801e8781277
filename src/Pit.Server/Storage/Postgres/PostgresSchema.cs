using Microsoft.Extensions.Logging;
using Npgsql;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// Versioned schema migrations. Each migration runs in its own transaction and records its version in
/// <c>schema_migrations</c>; the whole run holds a session advisory lock, so instances starting at once take turns
/// and the later ones find nothing left to do. Migrations are append-only: never edit one that has shipped.
/// </summary>
internal static class PostgresSchema
{
    /// <summary>Advisory lock key held while migrating ("PIT" + 1).</summary>
    public const long MigrationLockKey = 0x5049_5400_0001;

    /// <summary>
    /// Advisory lock key every apply transaction held to commit up to schema version 5 ("PIT" + 2), when each apply
    /// stamped its own versions. Since version 6 nothing takes it; kept so the key is never reused.
    /// </summary>
    public const long FeedLockKey = 0x5049_5400_0002;

    /// <summary>
    /// Class (first key) of the per-tenant apply locks, <c>pg_try_advisory_xact_lock(class, hashtext(tenant))</c>:
    /// one apply transaction at a time per tenant. Two-key advisory locks never collide with one-key ones.
    /// </summary>
    public const int TenantApplyLockClass = 0x5049_5402;

    /// <summary>
    /// Advisory lock key of the sequencer ("PIT" + 4): the leader holds it as a session lock on its own connection, so
    /// one instance at a time stamps versions, and it passes to another instance when that connection dies.
    /// </summary>
    public const long SequencerLockKey = 0x5049_5400_0004;

    /// <summary>Advisory lock key held while creating or dropping audit partitions ("PIT" + 3).</summary>
    public const long AuditPartitionLockKey = 0x5049_5400_0003;

    /// <summary>The migrations in order; versions are 1, 2, 3, ...</summary>
    public static IReadOnlyList<(int Version, string Name, string Sql)> Migrations { get; } =
    [
        (1, "initial schema", $"""
            CREATE TABLE submissions (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id uuid NOT NULL UNIQUE,
                tenant text NOT NULL,
                client_id text NOT NULL,
                orgnr_child text,
                content bytea,
                content_hash bytea NOT NULL,
                key_systems text[] NOT NULL,
                key_values text[] NOT NULL,
                accepted_at bigint NOT NULL,
                state smallint NOT NULL DEFAULT {SubmissionStateSql.Queued},
                attempts integer NOT NULL DEFAULT 0,
                retry_at bigint NOT NULL DEFAULT 0,
                last_error text,
                processed_at bigint,
                patient_id text COLLATE "C",
                patient_version integer,
                reason text);
            CREATE INDEX submissions_queued ON submissions (seq) WHERE state = {SubmissionStateSql.Queued};

            CREATE TABLE patients (
                id text COLLATE "C" PRIMARY KEY,
                tenant text COLLATE "C" NOT NULL,
                version integer NOT NULL,
                last_updated bigint NOT NULL,
                content_hash bytea NOT NULL,
                last_seq bigint NOT NULL,
                json bytea NOT NULL);
            CREATE UNIQUE INDEX patients_feed ON patients (last_updated, id);
            CREATE INDEX patients_tenant_feed ON patients (tenant, last_updated, id);

            CREATE TABLE patient_keys (
                tenant text COLLATE "C" NOT NULL,
                system text COLLATE "C" NOT NULL,
                value text COLLATE "C" NOT NULL,
                patient_id text COLLATE "C" NOT NULL REFERENCES patients (id),
                PRIMARY KEY (tenant, system, value));
            CREATE INDEX patient_keys_patient ON patient_keys (patient_id);

            CREATE TABLE secrets (name text PRIMARY KEY, value bytea NOT NULL);

            CREATE TABLE audit_log (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at bigint NOT NULL,
                action text NOT NULL,
                client_id text NOT NULL,
                organisation text NOT NULL,
                orgnr_child text,
                submission_id uuid,
                patient_ids text,
                status integer NOT NULL,
                outcome text NOT NULL);
            CREATE INDEX audit_log_organisation ON audit_log (organisation, id);
            """),
        (2, "dpop replay cache", """
            CREATE TABLE dpop_replay (
                key text COLLATE "C" PRIMARY KEY,
                expires_at bigint NOT NULL);
            CREATE INDEX dpop_replay_expiry ON dpop_replay (expires_at);
            """),
        (3, "dpop replay cache: unlogged, 16-byte keys, batched inserts", """
            DROP TABLE IF EXISTS dpop_replay;
            CREATE UNLOGGED TABLE dpop_replay_keys (
                key uuid PRIMARY KEY,
                expires_at bigint NOT NULL);
            CREATE INDEX dpop_replay_keys_expiry ON dpop_replay_keys (expires_at);
            """),
        (4, "audit log partitioned by day; processed submissions indexed for retention", PostgresAuditPartitions.PartitioningMigration),
        (5, "submissions: client name for provenance", """
            ALTER TABLE submissions ADD COLUMN client_name text;
            """),
        (6, "patients: versions applied in parallel wait unstamped for the sequencer", """
            ALTER TABLE patients
                ALTER COLUMN last_updated DROP NOT NULL,
                ALTER COLUMN json DROP NOT NULL,
                ADD COLUMN pending_version integer,
                ADD COLUMN pending_json bytea,
                ADD COLUMN pending_stamp_at integer;
            CREATE INDEX patients_pending ON patients (last_seq) WHERE pending_version IS NOT NULL;
            """),
        // An unstamped new Patient is in no feed, so it need not be in the feed indexes: its apply writes two index
        // entries fewer, and the sequencer's stamp adds them. Every feed query says "last_updated IS NOT NULL"
        // (PostgresPitStore.Stamped), and max(last_updated) implies it, so the planner uses these as before.
        (7, "patients: feed indexes hold stamped versions only", """
            DROP INDEX patients_feed;
            CREATE UNIQUE INDEX patients_feed ON patients (last_updated, id) WHERE last_updated IS NOT NULL;
            DROP INDEX patients_tenant_feed;
            CREATE INDEX patients_tenant_feed ON patients (tenant, last_updated, id) WHERE last_updated IS NOT NULL;
            """),
        // The identifier insert checked each row's Patient (a FOR KEY SHARE lookup of patients per identifier, which
        // also marks the Patient's row locked). Identifiers are written only by the apply, in the transaction that
        // writes their Patient, and Patients are never deleted, so the check could not fail.
        (8, "patient_keys: no foreign-key check per identifier", """
            ALTER TABLE patient_keys DROP CONSTRAINT IF EXISTS patient_keys_patient_id_fkey;
            """),
    ];

    /// <summary>The version the code expects.</summary>
    public static int LatestVersion => Migrations[^1].Version;

    /// <summary>Applies every migration the database lacks. Safe to run from several processes at once.</summary>
    public static async Task MigrateAsync(NpgsqlDataSource dataSource, ILogger logger, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);

        // Nothing to do: no lock, no DDL, so a runtime role without CREATE may start with MigrateOnStartup=true once
        // the owner has migrated (deploy/postgres-roles.sql).
        if (await CurrentVersionAsync(connection, cancellationToken) >= LatestVersion)
        {
            return;
        }

        await ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({MigrationLockKey});", cancellationToken);
        try
        {
            await ExecuteAsync(connection, null, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now());
                """, cancellationToken);
            var applied = new HashSet<int>();
            await using (var select = new NpgsqlCommand("SELECT version FROM schema_migrations;", connection))
            await using (var reader = await select.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    applied.Add(reader.GetInt32(0));
                }
            }

            foreach (var (version, name, sql) in Migrations)
            {
                if (applied.Contains(version))
                {
                    continue;
                }

                await using var tx = await connection.BeginTransactionAsync(cancellationToken);
                await ExecuteAsync(connection, tx, sql, cancellationToken);
                await using (var record = new NpgsqlCommand("INSERT INTO schema_migrations (version, name) VALUES ($1, $2);", connection, tx))
                {
                    record.Parameters.Add(new NpgsqlParameter<int> { TypedValue = version });
                    record.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await tx.CommitAsync(cancellationToken);
                logger.LogInformation("Applied PostgreSQL schema migration {Version} ({Name}).", version, name);
            }
        }
        finally
        {
            // Unlock even when cancelled; a broken connection has dropped the lock already.
            if (connection.FullState == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({MigrationLockKey});", CancellationToken.None);
            }
        }
    }

    /// <summary>The highest migration applied (migrations are applied in order), 0 for an empty database.</summary>
    public static async Task<int> CurrentVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using (var exists = new NpgsqlCommand("SELECT to_regclass('schema_migrations') IS NOT NULL;", connection))
        {
            if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken))!)
            {
                return 0;
            }
        }

        await using var max = new NpgsqlCommand("SELECT coalesce(max(version), 0) FROM schema_migrations;", connection);
        return (int)(await max.ExecuteScalarAsync(cancellationToken))!;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
