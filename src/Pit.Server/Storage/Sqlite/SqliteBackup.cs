using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>What a backup holds, as read back from the finished file.</summary>
internal sealed record SqliteBackupSummary(long Patients, long QueuedSubmissions, long Submissions);

/// <summary>
/// An online backup of the SQLite store (<c>Pit.Server.dll backup &lt;file&gt;</c>) while the server keeps taking
/// requests: <c>VACUUM INTO</c> copies one consistent snapshot (a read transaction, which in WAL mode never blocks the
/// writer), then the copy is flushed to disk, checked (<c>PRAGMA quick_check</c>) and only then given its name.
/// </summary>
internal static class SqliteBackup
{
    /// <summary>
    /// Runs the command for the store that <paramref name="args"/> (the server's own configuration sources) name;
    /// returns the process exit code. Only configuration is read: no server is built, so no other setting is needed.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, string target, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateBuilder(args);
        var storage = builder.Configuration.GetSection("Pit:Storage").Get<StorageOptions>() ?? new StorageOptions();
        if (storage.Provider != "Sqlite")
        {
            await error.WriteLineAsync($"configuration error: Pit:Storage:Provider is {storage.Provider}; backup is for the SQLite store (back up PostgreSQL with pg_dump, docs/OPERATIONS.md).");
            return 2;
        }

        try
        {
            var source = SqliteSetup.ConnectionString(storage, builder.Environment);
            var summary = await BackupAsync(source, target, cancellationToken);
            await output.WriteLineAsync($"Backup written to {Path.GetFullPath(target)}: {summary.Patients} Patients, " +
                $"{summary.Submissions} submissions ({summary.QueuedSubmissions} still queued; a server started on the copy applies them).");
            return 0;
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or SqliteException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"Backup failed: {ex.Message}");
            return 1;
        }
    }

    /// <summary>Copies the store at <paramref name="sourceConnectionString"/> to the new file <paramref name="target"/>.</summary>
    public static async Task<SqliteBackupSummary> BackupAsync(string sourceConnectionString, string target, CancellationToken cancellationToken)
    {
        target = Path.GetFullPath(target);
        if (File.Exists(target))
        {
            throw new IOException($"{target} exists; a backup never overwrites a file.");
        }

        var partial = target + ".partial";
        File.Delete(partial);
        try
        {
            // ReadWrite, not the default ReadWriteCreate: a mistyped path must fail, not back up a new empty file.
            var builder = new SqliteConnectionStringBuilder(sourceConnectionString) { Mode = SqliteOpenMode.ReadWrite, Pooling = false };
            await using (var connection = new SqliteConnection(builder.ToString()))
            {
                await SqlitePitStore.OpenNamingFileAsync(connection, cancellationToken);
                SqlitePitStore.WaitWhenBusy(connection);
                await using var vacuum = connection.CreateCommand();
                vacuum.CommandText = "VACUUM INTO $target;";
                vacuum.Parameters.AddWithValue("$target", partial);
                await vacuum.ExecuteNonQueryAsync(cancellationToken);
            }

            // SQLite does not fsync what VACUUM INTO writes.
            await using (var file = new FileStream(partial, FileMode.Open, FileAccess.ReadWrite))
            {
                file.Flush(flushToDisk: true);
            }

            var summary = await CheckAsync(partial, cancellationToken);
            File.Move(partial, target);
            return summary;
        }
        finally
        {
            File.Delete(partial);
        }
    }

    private static async Task<SqliteBackupSummary> CheckAsync(string file, CancellationToken cancellationToken)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadOnly, Pooling = false };
        await using var connection = new SqliteConnection(builder.ToString());
        await SqlitePitStore.OpenNamingFileAsync(connection, cancellationToken);
        var check = (string?)await SqlitePitStore.ScalarAsync(connection, null, "PRAGMA quick_check;", cancellationToken);
        if (check != "ok")
        {
            throw new InvalidDataException($"The backup failed its integrity check: {check}");
        }

        return new SqliteBackupSummary(
            (long)(await SqlitePitStore.ScalarAsync(connection, null, "SELECT count(*) FROM patients;", cancellationToken))!,
            (long)(await SqlitePitStore.ScalarAsync(connection, null, $"SELECT count(*) FROM submissions WHERE state = {SubmissionStateSql.Queued};", cancellationToken))!,
            (long)(await SqlitePitStore.ScalarAsync(connection, null, "SELECT count(*) FROM submissions;", cancellationToken))!);
    }
}
