using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a commit is on disk before it
/// returns. All writes go through one connection guarded by a lock (SQLite has one writer anyway); reads use pooled
/// connections and run beside the writer.
/// </summary>
internal sealed partial class SqlitePitStore
    : IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IAuditExportStore, IRetentionStore, IStoreHealth, IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private SqliteConnection? _writer;

    public SqlitePitStore(string connectionString, TimeProvider time)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString) { Pooling = true };
        Location = FullPath(builder.DataSource);
        if (builder.DataSource is { Length: > 0 } file && !file.StartsWith(':') && Path.GetDirectoryName(Path.GetFullPath(file)) is { } dir)
        {
            try
            {
                Directory.CreateDirectory(dir);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // What SQLite would answer (SQLITE_CANTOPEN), with the reason and the file named.
                throw new SqliteException($"SQLite Error 14: 'unable to open database file': cannot create its folder ({ex.Message}). Database file: {Location}", 14);
            }
        }

        _connectionString = builder.ToString();
        _time = time;
    }

    public string Location { get; }

    public Task MigrateAsync(CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            var version = Convert.ToInt32(await ScalarAsync(writer, tx, "PRAGMA user_version;", cancellationToken));
            for (var next = version; next < SqliteSchema.Version; next++)
            {
                await ExecuteAsync(writer, tx, SqliteSchema.Migrations[next], cancellationToken);
            }

            if (version < SqliteSchema.Version)
            {
                await ExecuteAsync(writer, tx, $"PRAGMA user_version = {SqliteSchema.Version};", cancellationToken);
            }
        }, cancellationToken);

    public async Task<SchemaVersion> GetSchemaVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        return new SchemaVersion(Convert.ToInt32(await ScalarAsync(connection, null, "PRAGMA user_version;", cancellationToken)), SqliteSchema.Version);
    }

    public async Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken)
    {
        await InWriteTransactionAsync(async (writer, tx) =>
        {
            await using var insert = writer.CreateCommand();
            insert.Transaction = tx;
            insert.CommandText = """
                INSERT INTO submissions (id, tenant, client_id, orgnr_child, client_name, content, content_hash, keys, accepted_at)
                VALUES ($id, $tenant, $client, $child, $name, $content, $hash, $keys, $at);
                """;
            var id = insert.Parameters.Add("$id", SqliteType.Blob);
            var tenant = insert.Parameters.Add("$tenant", SqliteType.Text);
            var client = insert.Parameters.Add("$client", SqliteType.Text);
            var child = insert.Parameters.Add("$child", SqliteType.Text);
            var name = insert.Parameters.Add("$name", SqliteType.Text);
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
                name.Value = (object?)s.ClientName ?? DBNull.Value;
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
        await using var command = Command(connection, null, StoredRows.QueueStatisticsQuery);
        return await StoredRows.QueueStatisticsAsync(command, cancellationToken);
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

    public async Task<PatientPage> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        BuildSearch(command, query);
        return await StoredRows.PatientPageAsync(command, query, cancellationToken);
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

    /// <summary>
    /// Appends a batch without an fsync of its own (<c>synchronous=NORMAL</c> for this transaction): the rows reach
    /// the disk with the next durable commit on this file (the next group commit or apply) or the next checkpoint.
    /// A process crash loses none of them; a power loss or OS crash can lose those committed since (docs/OPERATIONS.md).
    /// </summary>
    public async Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken)
    {
        await InWriteTransactionAsync(durable: false, async (writer, tx) =>
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
        command.CommandText = StoredRows.AuditQuery(organisation is null ? null : "$org", "$limit");
        if (organisation is not null)
        {
            command.Parameters.AddWithValue("$org", organisation);
        }

        command.Parameters.AddWithValue("$limit", limit);
        return await StoredRows.AuditAsync(command, cancellationToken);
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
        await OpenNamingFileAsync(connection, cancellationToken);
        WaitWhenBusy(connection);
        return connection;
    }

    /// <summary>
    /// Opens <paramref name="connection"/>; when SQLite cannot, the error names the file by its full path (SQLite's
    /// own message, e.g. <c>unable to open database file</c>, does not). Same exception type and error codes.
    /// </summary>
    internal static async Task OpenNamingFileAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            await connection.OpenAsync(cancellationToken);
        }
        catch (SqliteException ex)
        {
            await connection.DisposeAsync();
            throw new SqliteException($"{ex.Message} Database file: {FullPath(connection.DataSource)}", ex.SqliteErrorCode, ex.SqliteExtendedErrorCode);
        }
    }

    /// <summary>The full path of a data source as SQLite opens it (relative to the working directory).</summary>
    internal static string FullPath(string dataSource) =>
        dataSource.StartsWith(':') || dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? dataSource : Path.GetFullPath(dataSource);

    /// <summary>
    /// Lets SQLite retry for up to 5 s when the file is locked. The same as <c>PRAGMA busy_timeout = 5000</c>, without
    /// parsing and running a statement on every open: a pooled connection is opened for every read, and the setting
    /// lives on the native handle anyway.
    /// </summary>
    internal static void WaitWhenBusy(SqliteConnection connection) => SQLitePCL.raw.sqlite3_busy_timeout(connection.Handle, 5000);

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction on the single write connection, holding the write lock, and
    /// commits it (an exception rolls it back).
    /// </summary>
    private Task<T> InWriteTransactionAsync<T>(Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: true, work, cancellationToken);

    /// <summary>
    /// As above; with <paramref name="durable"/> false the commit does not wait for an fsync (<c>synchronous=NORMAL</c>
    /// in WAL mode): it survives a process crash, and reaches the disk with the next durable commit or checkpoint.
    /// </summary>
    private async Task<T> InWriteTransactionAsync<T>(bool durable, Func<SqliteConnection, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = await WriterAsync(cancellationToken);
            if (!durable)
            {
                await ExecuteAsync(writer, "PRAGMA synchronous = NORMAL;", cancellationToken);
            }

            try
            {
                await using var tx = (SqliteTransaction)await writer.BeginTransactionAsync(cancellationToken);
                var result = await work(writer, tx);
                await tx.CommitAsync(cancellationToken);
                return result;
            }
            finally
            {
                if (!durable)
                {
                    await ExecuteAsync(writer, "PRAGMA synchronous = FULL;", CancellationToken.None);
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private Task InWriteTransactionAsync(Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: true, work, cancellationToken);

    private Task InWriteTransactionAsync(bool durable, Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable, async (writer, tx) =>
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

    internal static async Task<object?> ScalarAsync(SqliteConnection connection, SqliteTransaction? tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, tx, sql);
        return await command.ExecuteScalarAsync(cancellationToken);
    }
}
