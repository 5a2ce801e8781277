using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// The embedded store: one SQLite file in WAL mode with <c>synchronous=FULL</c>, so a commit is on disk before it
/// returns (the apply, audit and retention commits skip that fsync: see <see cref="InWriteTransactionAsync{T}(bool, Func{SqliteStatements, SqliteTransaction, Task{T}}, CancellationToken)"/>).
/// All writes go through one connection guarded by a lock (SQLite has one writer anyway); reads use connections kept
/// open in a small pool of their own and run beside the writer. Every connection keeps its statements prepared
/// (<see cref="SqliteStatements"/>).
/// </summary>
internal sealed partial class SqlitePitStore
    : IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IAuditExportStore, IRetentionStore, IStoreHealth, IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private SqliteStatements? _writer;

    // Open read connections with their prepared statements, at most MaxIdleReaders of them kept between reads.
    private const int MaxIdleReaders = 32;
    private readonly ConcurrentBag<SqliteStatements> _idleReaders = [];
    private int _idleReaderCount;
    private volatile bool _disposed;

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
            var version = Convert.ToInt32(await ScalarAsync(writer.Connection, tx, "PRAGMA user_version;", cancellationToken));
            for (var next = version; next < SqliteSchema.Version; next++)
            {
                await ExecuteAsync(writer.Connection, tx, SqliteSchema.Migrations[next], cancellationToken);
            }

            if (version < SqliteSchema.Version)
            {
                await ExecuteAsync(writer.Connection, tx, $"PRAGMA user_version = {SqliteSchema.Version};", cancellationToken);
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
            using var insert = writer.Get(InsertSubmissionSql, tx, "$id", "$tenant", "$client", "$child", "$name", "$content", "$hash", "$keys", "$at");
            foreach (var s in batch)
            {
                await insert.With(
                    s.Id.ToByteArray(), s.Tenant, s.ClientId, s.OrgnrChild, s.ClientName, s.Content, s.ContentHash, SerializeKeys(s.Keys), s.AcceptedAt)
                    .ExecuteNonQueryAsync(cancellationToken);
            }
        }, cancellationToken);
    }

    private const string InsertSubmissionSql = """
        INSERT INTO submissions (id, tenant, client_id, orgnr_child, client_name, content, content_hash, keys, accepted_at)
        VALUES ($id, $tenant, $client, $child, $name, $content, $hash, $keys, $at);
        """;

    private static readonly string SubmissionByIdSql = $"SELECT {StoredRows.SubmissionColumns} FROM submissions WHERE id = $id;";

    private static readonly string[] SearchParameterNames = ["$p0", "$p1", "$p2", "$p3", "$p4", "$p5", "$p6", "$p7"];

    private static readonly string PatientByIdSql = $"SELECT {StoredRows.PatientColumns} FROM patients WHERE id = $id;";

    public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) =>
        ReadAsync(async statements =>
        {
            using var select = statements.Get(SubmissionByIdSql, null, "$id");
            await using var reader = await select.With(id.ToByteArray()).ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? StoredRows.Submission(id, reader) : null;
        }, cancellationToken);

    public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) =>
        ReadAsync(async statements =>
        {
            using var select = statements.Get(StoredRows.QueueStatisticsQuery, null);
            return await StoredRows.QueueStatisticsAsync(select.Command, cancellationToken);
        }, cancellationToken);

    public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
        ReadAsync(async statements =>
        {
            using var select = statements.Get(PatientByIdSql, null, "$id");
            await using var reader = await select.With(id).ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? StoredRows.Patient(reader) : null;
        }, cancellationToken);

    public Task<PatientPage> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) =>
        ReadAsync(async statements =>
        {
            // The text depends only on which filters are present (a few dozen shapes), so each shape is prepared once
            // per connection; the values are bound as $p0, $p1, ... in the order KeysetQuery asks for them.
            var values = new List<object>(6);
            var sql = BuildSearch(query, values);
            using var select = statements.Get(sql, null, SearchParameterNames.AsSpan(0, values.Count));
            for (var i = 0; i < values.Count; i++)
            {
                select.Command.Parameters[i].Value = values[i];
            }

            return await StoredRows.PatientPageAsync(select.Command, query, cancellationToken);
        }, cancellationToken);

    /// <summary>The keyset page query (<see cref="KeysetQuery"/>) set on <paramref name="command"/> with its values bound.</summary>
    internal static void BuildSearch(SqliteCommand command, PatientPageQuery query)
    {
        var values = new List<object>(6);
        command.CommandText = BuildSearch(query, values);
        for (var i = 0; i < values.Count; i++)
        {
            command.Parameters.AddWithValue($"$p{i}", values[i]);
        }
    }

    /// <summary>The keyset page query (<see cref="KeysetQuery"/>) with this engine's placeholders; the values go to <paramref name="values"/>.</summary>
    internal static string BuildSearch(PatientPageQuery query, List<object> values) =>
        KeysetQuery.Build(query, value =>
        {
            values.Add(value);
            return $"$p{values.Count - 1}";
        });

    public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(async (writer, tx) =>
        {
            await using var insert = Command(writer.Connection, tx, "INSERT OR IGNORE INTO secrets (name, value) VALUES ($name, $value);");
            insert.Parameters.AddWithValue("$name", name);
            insert.Parameters.AddWithValue("$value", create());
            await insert.ExecuteNonQueryAsync(cancellationToken);
            await using var select = Command(writer.Connection, tx, "SELECT value FROM secrets WHERE name = $name;");
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
            using var insert = writer.Get("""
                INSERT INTO audit_log (at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome)
                VALUES ($at, $action, $client, $org, $child, $submission, $patients, $status, $outcome);
                """, tx, "$at", "$action", "$client", "$org", "$child", "$submission", "$patients", "$status", "$outcome");
            foreach (var e in entries)
            {
                await insert.With(e.At, e.Action, e.ClientId, e.Organisation, e.OrgnrChild, e.SubmissionId?.ToString(), e.PatientIds, e.Status, e.Outcome)
                    .ExecuteNonQueryAsync(cancellationToken);
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

    public Task CheckHealthAsync(CancellationToken cancellationToken) =>
        ReadAsync(async statements =>
        {
            using var select = statements.Get("SELECT count(*) FROM secrets;", null);
            return await select.Command.ExecuteScalarAsync(cancellationToken);
        }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        while (_idleReaders.TryTake(out var reader))
        {
            reader.Dispose();
        }

        // Waits for a write in progress (the last group commit at shutdown) rather than closing its connection under it.
        await _writeLock.WaitAsync();
        _writer?.Dispose();
        _writer = null;
        _writeLock.Release();
    }

    /// <summary>
    /// Runs <paramref name="read"/> on an open read connection with its prepared statements: one kept from an earlier
    /// read when there is one, else a new one. The connection goes back for the next read unless the read failed (a
    /// connection in an unknown state is closed instead) or <see cref="MaxIdleReaders"/> are already waiting.
    /// </summary>
    private async Task<T> ReadAsync<T>(Func<SqliteStatements, Task<T>> read, CancellationToken cancellationToken)
    {
        if (_idleReaders.TryTake(out var statements))
        {
            Interlocked.Decrement(ref _idleReaderCount);
        }
        else
        {
            statements = new SqliteStatements(await OpenAsync(cancellationToken));
        }

        var healthy = false;
        try
        {
            var result = await read(statements);
            healthy = true;
            return result;
        }
        finally
        {
            if (healthy && !_disposed && Interlocked.Increment(ref _idleReaderCount) <= MaxIdleReaders)
            {
                _idleReaders.Add(statements);

                // Disposed meanwhile: close what the disposal may have missed rather than leave a connection open.
                while (_disposed && _idleReaders.TryTake(out var late))
                {
                    late.Dispose();
                }
            }
            else
            {
                if (healthy && !_disposed)
                {
                    Interlocked.Decrement(ref _idleReaderCount);
                }

                statements.Dispose();
            }
        }
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
    private Task<T> InWriteTransactionAsync<T>(Func<SqliteStatements, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: true, work, cancellationToken);

    /// <summary>
    /// As above; with <paramref name="durable"/> false the commit does not wait for an fsync (<c>synchronous=NORMAL</c>
    /// in WAL mode): it survives a process crash, and reaches the disk with the next durable commit or checkpoint,
    /// since WAL frames are synced in order. A power loss before then undoes it (and only it, with any later non-durable
    /// commits): only work that is either redone the same way or may be lost is committed so (docs/OPERATIONS.md).
    /// </summary>
    private async Task<T> InWriteTransactionAsync<T>(bool durable, Func<SqliteStatements, SqliteTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = await WriterAsync(cancellationToken);
            if (!durable)
            {
                // A PRAGMA takes effect when it is prepared, so it cannot be kept prepared; two short statements per
                // batch, against an fsync saved.
                await ExecuteAsync(writer.Connection, "PRAGMA synchronous = NORMAL;", cancellationToken);
            }

            try
            {
                await using var tx = (SqliteTransaction)await writer.Connection.BeginTransactionAsync(cancellationToken);
                var result = await work(writer, tx);
                await tx.CommitAsync(cancellationToken);
                return result;
            }
            finally
            {
                if (!durable)
                {
                    await ExecuteAsync(writer.Connection, "PRAGMA synchronous = FULL;", CancellationToken.None);
                }
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private Task InWriteTransactionAsync(Func<SqliteStatements, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: true, work, cancellationToken);

    private Task InWriteTransactionAsync(bool durable, Func<SqliteStatements, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable, async (writer, tx) =>
        {
            await work(writer, tx);
            return true;
        }, cancellationToken);

    // Called with the write lock held.
    private async Task<SqliteStatements> WriterAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_writer is null)
        {
            var writer = await OpenAsync(cancellationToken);
            await ExecuteAsync(writer, "PRAGMA journal_mode = WAL;", cancellationToken);
            await ExecuteAsync(writer, "PRAGMA synchronous = FULL;", cancellationToken);
            SQLitePCL.raw.sqlite3_wal_autocheckpoint(writer.Handle, WalBackstopPages);
            _writer = new SqliteStatements(writer);
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
