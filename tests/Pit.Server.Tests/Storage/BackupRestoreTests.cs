using Microsoft.Data.Sqlite;
using Npgsql;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// The backup and restore commands of docs/OPERATIONS.md, each run while a server takes POSTs, then a server started
/// on the restored copy (<see cref="BackupUnderLoad"/>).
/// </summary>
public sealed class BackupRestoreTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly Dictionary<string, string?> Unthrottled = new() { ["Pit:RateLimiting:Enabled"] = "false" };

    private readonly string _folder = Directory.CreateTempSubdirectory("pit-backup-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_SQLite_backup_taken_with_the_backup_command_under_POST_load_restores_to_a_consistent_store()
    {
        var live = Directory.CreateDirectory(Path.Combine(_folder, "live")).FullName;
        var restored = Directory.CreateDirectory(Path.Combine(_folder, "restored")).FullName;
        var backupFile = Path.Combine(_folder, "pit-backup.db");

        await BackupUnderLoad.RunAsync(live, Unthrottled,
            backup: async _ =>
            {
                // The documented command, run beside the live server: dotnet Pit.Server.dll backup <file> --Pit:Storage:ConnectionString=...
                var output = await BackupUnderLoad.RunToolAsync("dotnet", KillUnderLoad.ServerDll, "backup", backupFile,
                    $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(live, "pit.db")}");
                Assert.Contains("Backup written to", output, StringComparison.Ordinal);
            },
            restore: async () =>
            {
                // Restoring is copying the file into place while no server runs on the target.
                File.Copy(backupFile, Path.Combine(restored, "pit.db"));
                return await SqliteSubmissionIdsAsync(Path.Combine(restored, "pit.db"));
            },
            restored, Unthrottled);
    }

    [Fact]
    public async Task The_SQLite_backup_command_never_overwrites_an_existing_file()
    {
        var existing = Path.Combine(_folder, "existing.db");
        await File.WriteAllTextAsync(existing, "keep me");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[] { KillUnderLoad.ServerDll, "backup", existing, $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(_folder, "pit.db")}" })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains("never overwrites", await stderr, StringComparison.Ordinal);
        Assert.Equal("keep me", await File.ReadAllTextAsync(existing));
    }

    [Fact]
    public async Task A_PostgreSQL_pg_dump_taken_under_POST_load_and_restored_with_pg_restore_into_a_fresh_database_is_consistent()
    {
        var live = await postgres.CreateDatabaseAsync();
        var target = await postgres.CreateDatabaseAsync();
        var dump = Path.Combine(_folder, "pit.dump");
        Dictionary<string, string?> Settings(string connectionString) => new(Unthrottled)
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = connectionString,
        };

        await BackupUnderLoad.RunAsync(_folder, Settings(live),
            backup: _ => BackupUnderLoad.RunToolAsync(Path.Combine(postgres.Binaries, "pg_dump"),
                "--format=custom", "--no-unlogged-table-data", $"--file={dump}", $"--dbname={LibpqUri(live)}"),
            restore: async () =>
            {
                await BackupUnderLoad.RunToolAsync(Path.Combine(postgres.Binaries, "pg_restore"),
                    "--exit-on-error", "--single-transaction", "--no-owner", $"--dbname={LibpqUri(target)}", dump);
                return await PostgresSubmissionIdsAsync(target);
            },
            _folder, Settings(target));
    }

    private static string LibpqUri(string connectionString)
    {
        var c = new NpgsqlConnectionStringBuilder(connectionString);
        return $"postgresql://{c.Username}@{c.Host}:{c.Port}/{c.Database}";
    }

    private static async Task<IReadOnlySet<Guid>> SqliteSubmissionIdsAsync(string file)
    {
        var ids = new HashSet<Guid>();
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = file, Mode = SqliteOpenMode.ReadWrite, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT id FROM submissions;";
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(new Guid((byte[])reader[0]));
        }

        return ids;
    }

    private static async Task<IReadOnlySet<Guid>> PostgresSubmissionIdsAsync(string connectionString)
    {
        var ids = new HashSet<Guid>();
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id FROM submissions;", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids;
    }
}
