using Pit.Server;
using Pit.Server.Storage;

// `dotnet Pit.Server.dll migrate [--Pit:Storage:...]` applies the schema migrations and exits, for deployments that
// run with Pit:Storage:MigrateOnStartup=false.
if (args.Length > 0 && args[0] == "migrate")
{
    var tool = PitApp.Create(args[1..]);
    await tool.Services.GetRequiredService<IStoreMigrator>().MigrateAsync(CancellationToken.None);
    Console.WriteLine("Schema is up to date.");
    return;
}

// `dotnet Pit.Server.dll backup <file> [--Pit:Storage:...]` writes an online backup of the SQLite store to a new file
// while the server runs (docs/OPERATIONS.md).
if (args.Length > 1 && args[0] == "backup")
{
    Environment.ExitCode = await Pit.Server.Storage.Sqlite.SqliteBackup.RunAsync(args[2..], args[1], Console.Out, Console.Error, CancellationToken.None);
    return;
}

// `dotnet Pit.Server.dll audit-export --from 2026-01-01 --to 2026-02-01 [--organisation …] [--out file]` writes audit
// entries as NDJSON (Audit/AuditExportCommand.cs).
if (args.Length > 0 && args[0] == "audit-export")
{
    await using var stdout = Console.OpenStandardOutput();
    Environment.ExitCode = await Pit.Server.Audit.AuditExportCommand.RunAsync(args[1..], stdout, Console.Error, CancellationToken.None);
    return;
}

var app = PitApp.Create(args);
await app.RunAsync();

/// <summary>Entry point; the wiring lives in <see cref="PitApp"/>.</summary>
public partial class Program;
