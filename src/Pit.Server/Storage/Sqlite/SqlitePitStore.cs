using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a commit is on disk before it
/// returns. All writes go through one connection guarded by a lock (SQLite has one writer anyway); reads use pooled
/// connections and run beside the writer.
/// </summary>
internal sealed class SqlitePitStore : IPitStore, IQueueStatistics, IAsyncDisposable
{
    private const int SchemaVersion = 1;

    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private SqliteConnection? _writer;

    public SqlitePitStore(string connectionString, TimeProvider time)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString) { Pooling = true };
        if (builder.DataSource is { Length: > 0 } file && !file.StartsWith(':') && Path.GetDirectoryName(Path.GetFullPath(file)) is { } dir)
        {
            Directory.CreateDirectory(dir);
        }

        _connectionString = builder.ToString();
        _time = time;
    }

    public Task InitializeAsync(CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            var version = Convert.ToInt32(await ScalarAsync(writer, tx, "PRAGMA user_version;", cancellationToken));
            if (version < 1)
            {
                await ExecuteAsync(writer, tx, """
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
                        state INTEGER NOT NULL DEFAULT 0,
                        processed_at INTEGER,
                        patient_id TEXT,
                        patient_version INTEGER,
                        reason TEXT);
                    CREATE INDEX submissions_queued ON submissions(seq) WHERE state = 0;
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
                    """, cancellationToken);
            }

            if (version < SchemaVersion)
            {
                await ExecuteAsync(writer, tx, $"PRAGMA user_version = {SchemaVersion};", cancellationToken);
            }
        }, cancellationToken);

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        await InWriteTransactionAsync(async (writer, tx) =>
        {
            await using var insert = writer.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO submissions (id, tenant, client_id, orgnr_child, content, content_hash, keys, accepted_at)
                VALUES ($id, $tenant, $client, $child, $content, $hash, $keys, $at);
                """;
            var id = insert.Parameters.Add("$id", SqliteType.Blob);
            var tenant = insert.Parameters.Add("$tenant", SqliteType.Text);
            var client = insert.Parameters.Add("$client", SqliteType.Text);
            var child = insert.Parameters.Add("$child", SqliteType.Text);
            var content = insert.Parameters.Add("$content", SqliteType.Blob);
            var hash = insert.Parameters.Add("$hash", SqliteType.Blob);
            var keys = insert.Parameters.Add("$keys", SqliteType.Text);
            var at = insert.Parameters.Add("$at", SqliteType.Integer);
            foreach (var s in batch)
            {
                id.Value = s.Id.ToByteArray();
                tenant.Value = s.Tenant;
                client.Value = s.ClientId;
                child.Value = (object?)s.OrgnrChild ?? DBNull.Value;
                content.Value = s.Content;
                hash.Value = s.ContentHash;
                keys.Value = SerializeKeys(s.Keys);
                at.Value = s.AcceptedAt;
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
        }, cancellationToken);
    }

    public async Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT {StoredRows.SubmissionColumns}
            FROM submissions WHERE id = $id;
            """;
        command.Parameters.AddWithValue("$id", id.ToByteArray());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return StoredRows.Submission(id, reader);
    }

    public async Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*), min(accepted_at) FROM submissions WHERE state = 0;";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new QueueStatistics(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1));
    }

    public async Task<IReadOnlyList<QueuedSubmission>> PeekQueuedAsync(int maxCount, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, accepted_at FROM submissions WHERE state = 0 ORDER BY seq LIMIT $max;";
        command.Parameters.AddWithValue("$max", maxCount);
        var queued = new List<QueuedSubmission>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            queued.Add(new QueuedSubmission(new Guid((byte[])reader[0]), reader.GetInt64(1)));
        }

        return queued;
    }

    public Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            var pending = new List<(long Seq, string Tenant, byte[] Content, byte[] Hash, string Keys)>();
            await using (var select = Command(writer, tx, """
                SELECT seq, tenant, content, content_hash, keys FROM submissions
                WHERE state = 0 ORDER BY seq LIMIT $max;
                """))
            {
                select.Parameters.AddWithValue("$max", maxCount);
                await using var reader = await select.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    pending.Add((reader.GetInt64(0), reader.GetString(1), (byte[])reader[2], (byte[])reader[3], reader.GetString(4)));
                }
            }

            if (pending.Count == 0)
            {
                return 0;
            }

            var clock = Convert.ToInt64(await ScalarAsync(writer, tx, "SELECT coalesce(max(last_updated), 0) FROM patients;", cancellationToken));
            await using var statements = new ApplyStatements(writer, tx);
            foreach (var s in pending)
            {
                var now = FeedTime.FromDateTimeOffset(_time.GetUtcNow());
                await statements.SavepointAsync(cancellationToken);
                try
                {
                    clock = await ApplyOneAsync(statements, s.Seq, s.Tenant, s.Content, s.Hash, DeserializeKeys(s.Keys), clock, now, cancellationToken);
                }
                catch (Exception ex) when (ex is not SqliteException and not OperationCanceledException)
                {
                    // A submission that cannot be applied must not block the queue: record it as failed.
                    await statements.RollbackToSavepointAsync(cancellationToken);
                    await statements.MarkAsync(s.Seq, SubmissionState.Failed, now, null, null, $"Processing failed: {ex.GetType().Name}.", cancellationToken);
                }

                await statements.ReleaseSavepointAsync(cancellationToken);
            }

            return pending.Count;
        }, cancellationToken);

    private static async Task<long> ApplyOneAsync(
        ApplyStatements st, long seq, string tenant, byte[] content, byte[] hash, IReadOnlyList<PatientKey> keys,
        long clock, long now, CancellationToken cancellationToken)
    {
        var matches = new List<ExistingPatient>();
        foreach (var key in keys)
        {
            var match = await st.FindAsync(tenant, key, cancellationToken);
            if (match is not null && !matches.Exists(m => m.Id == match.Id))
            {
                matches.Add(match);
            }
        }

        var decision = PatientUpsert.Decide(seq, hash, matches, PatientUpsert.NewPatientId);
        switch (decision.Action)
        {
            case UpsertAction.Write:
                var lastUpdated = Math.Max(now, clock + 1);
                var json = PatientJson.Compose(content, decision.PatientId!, decision.Version, lastUpdated, tenant);
                await st.WritePatientAsync(decision.PatientId!, tenant, decision.Version, lastUpdated, hash, seq, json, keys, cancellationToken);
                await st.MarkAsync(seq, SubmissionState.Applied, now, decision.PatientId, decision.Version, null, cancellationToken);
                return lastUpdated;
            case UpsertAction.Unchanged:
                await st.TouchSequenceAsync(decision.PatientId!, seq, cancellationToken);
                await st.MarkAsync(seq, SubmissionState.Unchanged, now, decision.PatientId, decision.Version, null, cancellationToken);
                return clock;
            case UpsertAction.Superseded:
                await st.MarkAsync(seq, SubmissionState.Superseded, now, decision.PatientId, decision.Version, null, cancellationToken);
                return clock;
            default:
                await st.MarkAsync(seq, SubmissionState.Failed, now, null, null, decision.Reason, cancellationToken);
                return clock;
        }
    }

    public async Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {StoredRows.PatientColumns} FROM patients WHERE id = $id;";
        command.Parameters.AddWithValue("$id", id);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? StoredRows.Patient(reader) : null;
    }

    public async Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        BuildSearch(command, query);
        return await StoredRows.PatientsAsync(command, query.Limit, cancellationToken);
    }

    /// <summary>The keyset page query (<see cref="KeysetQuery"/>) with this engine's parameters.</summary>
    internal static void BuildSearch(SqliteCommand command, PatientPageQuery query) =>
        command.CommandText = KeysetQuery.Build(query, value =>
        {
            var name = $"$p{command.Parameters.Count}";
            command.Parameters.AddWithValue(name, value);
            return name;
        });

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            await using var insert = Command(writer, tx, "INSERT OR IGNORE INTO secrets (name, value) VALUES ($name, $value);");
            insert.Parameters.AddWithValue("$name", name);
            insert.Parameters.AddWithValue("$value", create());
            await insert.ExecuteNonQueryAsync(cancellationToken);
            await using var select = Command(writer, tx, "SELECT value FROM secrets WHERE name = $name;");
            select.Parameters.AddWithValue("$name", name);
            return (byte[])(await select.ExecuteScalarAsync(cancellationToken))!;
        }, cancellationToken);

    public async Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await InWriteTransactionAsync(async (writer, tx) =>
        {
            await using var insert = Command(writer, tx, """
                INSERT INTO audit_log (at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome)
                VALUES ($at, $action, $client, $org, $child, $submission, $patients, $status, $outcome);
                """);
            foreach (var e in entries)
            {
                insert.Parameters.Clear();
                insert.Parameters.AddWithValue("$at", e.At);
                insert.Parameters.AddWithValue("$action", e.Action);
                insert.Parameters.AddWithValue("$client", e.ClientId);
                insert.Parameters.AddWithValue("$org", e.Organisation);
                insert.Parameters.AddWithValue("$child", (object?)e.OrgnrChild ?? DBNull.Value);
                insert.Parameters.AddWithValue("$submission", (object?)e.SubmissionId?.ToString() ?? DBNull.Value);
                insert.Parameters.AddWithValue("$patients", (object?)e.PatientIds ?? DBNull.Value);
                insert.Parameters.AddWithValue("$status", e.Status);
                insert.Parameters.AddWithValue("$outcome", e.Outcome);
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
        }, cancellationToken);
    }

    public async Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = string.Concat(
            "SELECT at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome FROM audit_log",
            organisation is null ? "" : " WHERE organisation = $org",
            " ORDER BY id DESC LIMIT $limit;");
        if (organisation is not null)
        {
            command.Parameters.AddWithValue("$org", organisation);
        }

        command.Parameters.AddWithValue("$limit", limit);
        var result = new List<AuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(new AuditEntry(
                reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.IsDBNull(5) ? null : Guid.Parse(reader.GetString(5)),
                reader.IsDBNull(6) ? null : reader.GetString(6),
                reader.GetInt32(7), reader.GetString(8)));
        }

        return result;
    }

    public async Task CheckHealthAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await ScalarAsync(connection, null, "SELECT count(*) FROM secrets;", cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_writer is not null)
        {
            await _writer.DisposeAsync();
        }

        _writeLock.Dispose();
    }

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, "PRAGMA busy_timeout = 5000;", cancellationToken);
        return connection;
    }

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction on the single write connection, holding the write lock, and
    /// commits it (an exception rolls it back).
    /// </summary>
    private async Task<T> InWriteTransactionAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = await WriterAsync(cancellationToken);
            await using var tx = (SqliteTransaction)await writer.BeginTransactionAsync(cancellationToken);
            var result = await work(writer, tx);
            await tx.CommitAsync(cancellationToken);
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private Task InWriteTransactionAsync(Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            await work(writer, tx);
            return true;
        }, cancellationToken);

    // Called with the write lock held.
    private async Task<SqliteConnection> WriterAsync(CancellationToken cancellationToken)
    {
        if (_writer is null)
        {
            var writer = await OpenAsync(cancellationToken);
            await ExecuteAsync(writer, "PRAGMA journal_mode = WAL;", cancellationToken);
            await ExecuteAsync(writer, "PRAGMA synchronous = FULL;", cancellationToken);
            _writer = writer;
        }

        return _writer;
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? tx, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        return command;
    }

    private static Task ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken) =>
        ExecuteAsync(connection, null, sql, cancellationToken);

    private static async Task ExecuteAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, tx, sql);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<object?> ScalarAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, tx, sql);
        return await command.ExecuteScalarAsync(cancellationToken);
    }

    internal static string SerializeKeys(IReadOnlyList<PatientKey> keys) =>
        JsonSerializer.Serialize(keys.Select(k => new[] { k.System, k.Value }));

    internal static IReadOnlyList<PatientKey> DeserializeKeys(string json) =>
        JsonSerializer.Deserialize<string[][]>(json)!.Select(k => new PatientKey(k[0], k[1])).ToList();

    /// <summary>The statements of one apply transaction, prepared once per batch and reused for every submission.</summary>
    private sealed class ApplyStatements : IAsyncDisposable
    {
        private readonly SqliteCommand _find;
        private readonly SqliteCommand _upsert;
        private readonly SqliteCommand _deleteKeys;
        private readonly SqliteCommand _insertKey;
        private readonly SqliteCommand _touch;
        private readonly SqliteCommand _mark;
        private readonly SqliteCommand _savepoint;
        private readonly SqliteCommand _rollbackTo;
        private readonly SqliteCommand _release;

        public ApplyStatements(SqliteConnection connection, SqliteTransaction tx)
        {
            _find = Prepare(connection, tx, """
                SELECT p.id, p.version, p.content_hash, p.last_seq
                FROM patient_keys k JOIN patients p ON p.id = k.patient_id
                WHERE k.tenant = $tenant AND k.system = $system AND k.value = $value;
                """, "$tenant", "$system", "$value");
            _upsert = Prepare(connection, tx, """
                INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
                VALUES ($id, $tenant, $version, $lu, $hash, $seq, $json)
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                    content_hash = excluded.content_hash, last_seq = excluded.last_seq, json = excluded.json;
                """, "$id", "$tenant", "$version", "$lu", "$hash", "$seq", "$json");
            _deleteKeys = Prepare(connection, tx, "DELETE FROM patient_keys WHERE patient_id = $id;", "$id");
            _insertKey = Prepare(connection, tx,
                "INSERT INTO patient_keys (tenant, system, value, patient_id) VALUES ($tenant, $system, $value, $id);",
                "$tenant", "$system", "$value", "$id");
            _touch = Prepare(connection, tx, "UPDATE patients SET last_seq = max(last_seq, $seq) WHERE id = $id;", "$seq", "$id");

            // The content is dropped once processed: the Patient row holds what is needed, and less health data lies about.
            _mark = Prepare(connection, tx, """
                UPDATE submissions SET state = $state, processed_at = $now, patient_id = $pid, patient_version = $version,
                    reason = $reason, content = CASE WHEN $state = 4 THEN content ELSE NULL END
                WHERE seq = $seq;
                """, "$state", "$now", "$pid", "$version", "$reason", "$seq");
            _savepoint = Prepare(connection, tx, "SAVEPOINT apply_one;");
            _rollbackTo = Prepare(connection, tx, "ROLLBACK TO apply_one;");
            _release = Prepare(connection, tx, "RELEASE apply_one;");
        }

        public Task SavepointAsync(CancellationToken cancellationToken) => _savepoint.ExecuteNonQueryAsync(cancellationToken);

        public Task RollbackToSavepointAsync(CancellationToken cancellationToken) => _rollbackTo.ExecuteNonQueryAsync(cancellationToken);

        public Task ReleaseSavepointAsync(CancellationToken cancellationToken) => _release.ExecuteNonQueryAsync(cancellationToken);

        public async Task<ExistingPatient?> FindAsync(string tenant, PatientKey key, CancellationToken cancellationToken)
        {
            Set(_find, tenant, key.System, key.Value);
            await using var reader = await _find.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken)
                ? new ExistingPatient(reader.GetString(0), reader.GetInt32(1), (byte[])reader[2], reader.GetInt64(3))
                : null;
        }

        public async Task WritePatientAsync(
            string id, string tenant, int version, long lastUpdated, byte[] hash, long seq, byte[] json,
            IReadOnlyList<PatientKey> keys, CancellationToken cancellationToken)
        {
            Set(_upsert, id, tenant, version, lastUpdated, hash, seq, json);
            await _upsert.ExecuteNonQueryAsync(cancellationToken);
            if (version > 1)
            {
                Set(_deleteKeys, id);
                await _deleteKeys.ExecuteNonQueryAsync(cancellationToken);
            }

            foreach (var key in keys.Distinct())
            {
                Set(_insertKey, tenant, key.System, key.Value, id);
                await _insertKey.ExecuteNonQueryAsync(cancellationToken);
            }
        }

        public async Task TouchSequenceAsync(string id, long seq, CancellationToken cancellationToken)
        {
            Set(_touch, seq, id);
            await _touch.ExecuteNonQueryAsync(cancellationToken);
        }

        public async Task MarkAsync(
            long seq, SubmissionState state, long now, string? patientId, int? version, string? reason, CancellationToken cancellationToken)
        {
            Set(_mark, (int)state, now, patientId, version, reason, seq);
            await _mark.ExecuteNonQueryAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var command in new[] { _find, _upsert, _deleteKeys, _insertKey, _touch, _mark, _savepoint, _rollbackTo, _release })
            {
                await command.DisposeAsync();
            }
        }

        private static SqliteCommand Prepare(SqliteConnection connection, SqliteTransaction tx, string sql, params string[] parameters)
        {
            var command = Command(connection, tx, sql);
            foreach (var name in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            return command;
        }

        private static void Set(SqliteCommand command, params object?[] values)
        {
            for (var i = 0; i < values.Length; i++)
            {
                command.Parameters[i].Value = values[i] ?? DBNull.Value;
            }
        }
    }
}
