using System.Data.Common;
using Microsoft.Extensions.Options;
using Pit.Server.Audit;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Operability;

/// <summary>
/// The command line of <c>Pit.Server</c>: the server itself, or one of the maintenance commands beside it
/// (<c>migrate</c>, <c>backup</c>, <c>audit-export</c>), <c>--help</c> and <c>--version</c>. A configuration error
/// becomes one line on standard error naming the key, and exit code 2, for the server and every command alike.
/// </summary>
internal static class ServerCommands
{
    /// <summary>Exit code: done.</summary>
    public const int Success = 0;

    /// <summary>Exit code: the command ran and failed (a store that cannot be opened, a failed backup).</summary>
    public const int Failed = 1;

    /// <summary>Exit code: a usage or configuration error; nothing was done.</summary>
    public const int UsageError = 2;

    /// <summary>What <c>--help</c> prints.</summary>
    public static string Help => $"""
        PIT server {ServerVersion.Value}

        usage: Pit.Server [command] [--key=value ...]

        Settings come from appsettings.json, appsettings.{"{Environment}"}.json, environment variables
        (Pit__Storage__Provider=Postgres) and flags (--Pit:Storage:Provider=Postgres); docs/OPERATIONS.md lists them.

        commands:
          (none)              run the server. Needs Pit:Auth:Authority, and Pit:PublicBaseUrl in Production.
          migrate             apply the schema migrations and prepare the audit log's day partitions, then exit.
                              Run it once before a rollout, as the database owner role. Reads Pit:Storage and
                              Pit:Audit only.
          backup <new file>   write an online backup of the SQLite store to a new file (never overwrites) while
                              the server runs. Reads Pit:Storage only.
          audit-export --from <time> --to <time> [--organisation <orgnr>] [--out <file>]
                              write the audit entries with from <= at < to as NDJSON, oldest first, to the file or
                              to standard output. Times are UTC unless they carry an offset; a date is its midnight.
                              Reads Pit:Storage only.

        options:
          -h, --help          this text (also after a command)
          --version           the version and the commit it was built from

        exit codes: 0 done; 1 failed (e.g. the store cannot be opened); 2 usage or configuration error.
        """;

    /// <summary>Runs the command <paramref name="args"/> name and returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        var command = args.FirstOrDefault();
        var rest = args.Length > 0 ? args[1..] : [];
        if (command is "-h" or "--help" or "help" || (IsCommand(command) && rest.Any(a => a is "-h" or "--help")))
        {
            await output.WriteAsync(Help);
            return Success;
        }

        if (command == "--version")
        {
            await output.WriteLineAsync(ServerVersion.Value);
            return Success;
        }

        if (command is not null && !command.StartsWith('-') && !command.Contains('=', StringComparison.Ordinal) && !IsCommand(command))
        {
            await error.WriteLineAsync($"unknown command '{command}'; `Pit.Server --help` lists the commands.");
            return UsageError;
        }

        try
        {
            switch (command)
            {
                case "migrate":
                    return await MigrateCommand.RunAsync(rest, output, error, CancellationToken.None);
                case "backup":
                    if (rest.Length == 0 || rest[0].StartsWith('-'))
                    {
                        await error.WriteLineAsync("usage: backup <new file> [--Pit:Storage:…]");
                        return UsageError;
                    }

                    return await SqliteBackup.RunAsync(rest[1..], rest[0], output, error, CancellationToken.None);
                case "audit-export":
                    await using (var stdout = Console.OpenStandardOutput())
                    {
                        return await AuditExportCommand.RunAsync(rest, stdout, error, CancellationToken.None);
                    }

                default:
                    var app = PitApp.Create(args);
                    await app.RunAsync();
                    return Environment.ExitCode;
            }
        }
        catch (OptionsValidationException ex)
        {
            // Options are checked when the application is built (PitApp), so no host log or stack trace precedes
            // this, and several failures arrive as one exception.
            await error.WriteLineAsync($"configuration error: {OneLine(string.Join(" ", ex.Failures.Select(f => f.Trim()).Distinct()))}");
            return UsageError;
        }
        catch (Exception ex) when (ex is DbException or StoreSchemaException)
        {
            // One line: SQLite open errors name the file (SqlitePitStore.OpenNamingFileAsync); PostgreSQL speaks for itself.
            await error.WriteLineAsync($"store error: {OneLine(ex.Message)}");
            return Failed;
        }
    }

    private static bool IsCommand(string? name) => name is "migrate" or "backup" or "audit-export";

    private static string OneLine(string text) =>
        string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
