using System.Data.Common;
using System.Globalization;

namespace Pit.Server.Storage;

/// <summary>
/// <c>migrate [--Pit:Storage:…] [--Pit:Audit:…]</c>: brings the store's schema to this build's version and prepares
/// the audit log for the coming days, then exits. Run it before a rollout (with <c>Pit:Storage:MigrateOnStartup=false</c>
/// on the servers) and daily, as the PostgreSQL owner role: a least-privilege runtime role cannot create the audit
/// log's day partitions, so this is where they are made (<see cref="AuditDaysAhead"/> days ahead) and dropped.
/// </summary>
internal static class MigrateCommand
{
    /// <summary>Days after today the audit log is prepared for: a week of missed daily runs loses nothing.</summary>
    public const int AuditDaysAhead = 7;

    // PostgreSQL's insufficient_privilege.
    private const string InsufficientPrivilege = "42501";

    /// <summary>Runs the command; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        await using var tool = PitApp.CreateStoreTool(args);
        var migrator = tool.Services.GetRequiredService<IStoreMigrator>();
        try
        {
            await migrator.MigrateAsync(cancellationToken);
        }
        catch (DbException ex) when (ex.SqlState == InsufficientPrivilege)
        {
            await error.WriteLineAsync($"store error: {ex.Message.ReplaceLineEndings(" ")} (migrate needs a role that may create tables: the owner role of deploy/postgres-roles.sql, not the servers' runtime role)");
            return 1;
        }

        var schema = await migrator.GetSchemaVersionAsync(cancellationToken);
        var run = await tool.Services.GetRequiredService<StoreRetention>().RunOnceAsync(AuditDaysAhead, cancellationToken);
        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"Schema is up to date (version {schema.Current}) in {migrator.Location}. Audit log prepared for {AuditDaysAhead} days ahead; " +
            $"retention removed {run.AuditRowsDeleted} audit rows and {run.SubmissionsDeleted} processed submissions."));
        return 0;
    }
}
