using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Pit.Server.Audit;
using Pit.Server.Operability;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// The least-privilege PostgreSQL set-up of docs/OPERATIONS.md, exactly as documented: deploy/postgres-roles.sql run
/// with psql, <c>migrate</c> as the owner role, the server as the runtime role.
/// </summary>
public sealed class PostgresLeastPrivilegeTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-roles-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_server_under_the_runtime_role_takes_posts_and_reads_after_the_owner_migrated()
    {
        var (owner, runtime) = await CreateDatabaseWithRolesAsync("pit_runs");

        // The runtime role cannot migrate, and says whom to ask.
        var refused = await ServerCommandLine.RunAsync(_folder, "migrate", "--Pit:Storage:Provider=Postgres", $"--Pit:Storage:ConnectionString={runtime}");
        Assert.True(refused.ExitCode == ServerCommands.Failed, refused.ToString());
        Assert.Contains("42501", refused.Errors, StringComparison.Ordinal);
        Assert.Contains("owner role", refused.Errors, StringComparison.Ordinal);

        var migrate = await ServerCommandLine.RunAsync(_folder, "migrate", "--Pit:Storage:Provider=Postgres", $"--Pit:Storage:ConnectionString={owner}");
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.Contains($"Schema is up to date (version {PostgresSchema.LatestVersion}) in PostgreSQL database pit_runs on 127.0.0.1:{postgres.Port}.", migrate.Output, StringComparison.Ordinal);

        await using var server = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, _folder, new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = runtime,
            ["Pit:Storage:MigrateOnStartup"] = "false",
            ["Pit:RateLimiting:Enabled"] = "false",
        });
        using var client = server.CreateClient();

        // POST, its processing, GET by id and the feed.
        var first = await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Runtime"));
        var lastUpdated = (string)first["meta"]!["lastUpdated"]!;
        var feed = await client.GetJsonAsync("v1/Patient?_lastUpdated=ge2020-01-01T00:00Z", HttpStatusCode.OK);
        Assert.Equal((string?)first["id"], (string?)Assert.Single(feed.Resources())["id"]);

        // A long poll past the last version is answered with the next one, applied after it was sent.
        var poll = client.GetPreferringAsync(LongPolls.After(lastUpdated), "wait=30");
        var second = await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Polled"));
        var answer = await poll;
        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal((string?)second["id"], (string?)Assert.Single(answer.Body.Resources())["id"]);

        // Its audit entries landed in the day partitions migrate made ahead, not in the default partition.
        await using (var asOwner = new NpgsqlConnection(owner))
        {
            await asOwner.OpenAsync();
            // Audit entries are written by a background loop shortly after each request.
            for (var i = 0; i < 100 && await ScalarAsync<long>(asOwner, "SELECT count(*) FROM audit_log;") < 4; i++)
            {
                await Task.Delay(100);
            }

            Assert.True(await ScalarAsync<long>(asOwner, "SELECT count(*) FROM audit_log;") >= 4);
            Assert.Equal(0, await ScalarAsync<long>(asOwner, "SELECT count(*) FROM audit_log_default;"));
        }
    }

    [Fact]
    public async Task The_runtime_role_can_change_no_table_and_its_retention_run_leaves_partitions_to_the_owner()
    {
        var (owner, runtime) = await CreateDatabaseWithRolesAsync("pit_ddl");
        var migrate = await ServerCommandLine.RunAsync(_folder, "migrate", "--Pit:Storage:Provider=Postgres", $"--Pit:Storage:ConnectionString={owner}");
        Assert.True(migrate.ExitCode == 0, migrate.ToString());

        await using (var asRuntime = new NpgsqlConnection(runtime))
        {
            await asRuntime.OpenAsync();
            foreach (var ddl in (string[])[
                "CREATE TABLE intruder (id int);",
                "CREATE TEMPORARY TABLE intruder (id int);",
                "CREATE SCHEMA intruder;",
                "ALTER TABLE patients ADD COLUMN intruder int;",
                "CREATE INDEX intruder ON patients (version);",
                "DROP TABLE submissions;",
                "TRUNCATE audit_log;",
                "DROP TABLE audit_log_default;"])
            {
                var error = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(asRuntime, ddl));
                Assert.True(error.SqlState == PostgresErrorCodes.InsufficientPrivilege, $"{ddl}: {error.SqlState} {error.MessageText}");
            }

            // What it needs is there: reading and writing rows.
            await ExecuteAsync(asRuntime, "INSERT INTO secrets (name, value) VALUES ('probe', '\\x00'); DELETE FROM secrets WHERE name = 'probe';");
        }

        // The hourly retention run as the runtime role: partition DDL is skipped, not failed; old rows that the
        // default partition caught are still deleted (plain DML).
        var store = new PostgresPitStore(PostgresPitStore.CreateDataSource(runtime), TimeProvider.System, ownsDataSource: true);
        await using (store)
        {
            var old = RetentionContractTests.Entry(DateTimeOffset.UtcNow.AddDays(-400), "974762501");
            await store.AppendAuditAsync([old], CancellationToken.None);
            var retention = new StoreRetention(store, TimeProvider.System, Options.Create(new AuditOptions { RetentionDays = 365 }),
                Options.Create(new StorageOptions()), NullLogger<StoreRetention>.Instance);
            var run = await retention.RunOnceAsync(CancellationToken.None);
            Assert.Equal(1, run.AuditRowsDeleted);
        }
    }

    /// <summary>Runs deploy/postgres-roles.sql with psql for a new database; returns the owner's and the runtime's connection strings.</summary>
    private async Task<(string Owner, string Runtime)> CreateDatabaseWithRolesAsync(string database)
    {
        var (ownerRole, runtimeRole) = ($"{database}_owner", $"{database}_runtime");
        var script = Path.Combine(ServerCommandLine.RepositoryRoot(), "deploy", "postgres-roles.sql");
        var psql = await ServerCommandLine.RunProgramAsync(Path.Combine(postgres.Binaries, "psql"), _folder,
        [
            "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", $"database={database}", "-v", $"owner={ownerRole}", "-v", $"runtime={runtimeRole}",
            "-f", script, $"host=127.0.0.1 port={postgres.Port} user=pit dbname=postgres",
        ]);
        Assert.True(psql.ExitCode == 0, psql.ToString());
        string As(string role) => new NpgsqlConnectionStringBuilder(postgres.ConnectionString(database)) { Username = role }.ToString();
        return (As(ownerRole), As(runtimeRole));
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
