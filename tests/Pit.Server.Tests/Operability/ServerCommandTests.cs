using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Hosting.Internal;
using Pit.Server.Operability;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

/// <summary>
/// The server's command line as an operator meets it: the built <c>Pit.Server.dll</c> run as a process for
/// <c>--help</c>, <c>--version</c>, the maintenance commands and configuration errors.
/// </summary>
public sealed class ServerCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-commands-").FullName;

    // TestServer deletes the folder it was given when it stops.
    public void Dispose()
    {
        if (Directory.Exists(_folder))
        {
            Directory.Delete(_folder, recursive: true);
        }
    }

    [Fact]
    public async Task Help_lists_every_command_with_its_options()
    {
        var help = await ServerCommandLine.RunAsync(_folder, "--help");
        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Empty(help.Errors);
        foreach (var text in (string[])["migrate", "backup <new file>", "audit-export --from <time> --to <time> [--organisation <orgnr>] [--out <file>]",
            "--version", "-h, --help", "exit codes: 0 done; 1 failed", "2 usage or configuration error"])
        {
            Assert.Contains(text, help.Output, StringComparison.Ordinal);
        }

        // After a command too, and without needing any setting.
        var commandHelp = await ServerCommandLine.RunAsync(_folder, "audit-export", "--help");
        Assert.Equal(0, commandHelp.ExitCode);
        Assert.Equal(help.Output, commandHelp.Output);
    }

    [Fact]
    public async Task Version_prints_the_version_with_its_commit_and_the_CapabilityStatement_carries_the_same()
    {
        var result = await ServerCommandLine.RunAsync(_folder, "--version");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Empty(result.Errors);
        var version = result.Output.TrimEnd('\n');
        Assert.DoesNotContain('\n', version);
        Assert.Equal(ServerVersion.Value, version);

        // A build from a git checkout carries its commit; one from a source archive (no .git) the version alone.
        var fromCheckout = Path.Exists(Path.Combine(ServerCommandLine.RepositoryRoot(), ".git"));
        Assert.Matches(fromCheckout ? @"^\d+\.\d+\.\d+\+[0-9a-f]{40}$" : @"^\d+\.\d+\.\d+$", version);

        await using var server = await TestServer.StartAsync();
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var metadata = JsonNode.Parse(await http.GetStringAsync("v1/metadata"))!;
        Assert.Equal(version, (string?)metadata["software"]!["version"]);
    }

    [Fact]
    public async Task Migrate_and_audit_export_need_only_the_store_settings()
    {
        // Production, and no Pit:Auth or Pit:PublicBaseUrl, which the server itself would demand.
        string[] settings = ["--environment=Production", $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(_folder, "pit.db")}"];
        var migrate = await ServerCommandLine.RunAsync(_folder, ["migrate", .. settings]);
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.Contains($"Schema is up to date (version {SqliteSchema.Version}) in {Path.Combine(_folder, "pit.db")}.", migrate.Output, StringComparison.Ordinal);

        var export = await ServerCommandLine.RunAsync(_folder, ["audit-export", "--from", "2026-01-01", "--to", "2026-02-01", .. settings]);
        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.Equal("Exported 0 audit entries.", export.Errors.Trim());
        Assert.Empty(export.Output);
    }

    [Theory]
    [InlineData("Pit:Auth:Authority", "--environment=Production", "--Pit:PublicBaseUrl=https://pit.example", "--urls=http://127.0.0.1:0")]
    [InlineData("Pit:Storage:SubmissionRetentionDays", "--environment=Production", "--Pit:PublicBaseUrl=https://pit.example",
        "--Pit:Auth:Authority=https://helseid-sts.test.nhn.no", "--urls=http://127.0.0.1:0", "--Pit:Storage:SubmissionRetentionDays=0")]
    [InlineData("Pit:Auth:StandIn:Enabled", "--environment=Production", "--Pit:Auth:StandIn:Enabled=true", "--urls=http://127.0.0.1:0")]
    [InlineData("Pit:Storage:Provider", "migrate", "--Pit:Storage:Provider=Oracle")]
    [InlineData("Pit:Storage:ConnectionString", "migrate", "--Pit:Storage:Provider=Postgres")]
    [InlineData("Pit:Audit:RetentionDays", "audit-export", "--from", "2026-01-01", "--to", "2026-02-01", "--Pit:Audit:RetentionDays=0")]
    [InlineData("Pit:Storage:Provider", "backup", "copy.db", "--Pit:Storage:Provider=Postgres")]
    public async Task A_bad_or_missing_setting_prints_one_line_naming_the_key_and_exits_with_2(string key, params string[] arguments)
    {
        var result = await ServerCommandLine.RunAsync(_folder, arguments);
        Assert.True(result.ExitCode == ServerCommands.UsageError, result.ToString());
        var line = Assert.Single(result.ErrorLines);
        Assert.StartsWith("configuration error: ", line, StringComparison.Ordinal);
        Assert.Contains(key, line, StringComparison.Ordinal);
        Assert.Empty(result.Output);
    }

    [Fact]
    public async Task Backup_run_where_there_is_no_store_names_the_file_it_tried()
    {
        // As from the repository root: the default data/pit.db under the working directory does not exist.
        var result = await ServerCommandLine.RunAsync(_folder, "backup", "copy.db");
        Assert.True(result.ExitCode == ServerCommands.Failed, result.ToString());
        Assert.Contains($"Database file: {Path.Combine(_folder, "data", "pit.db")}", result.Errors, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_folder, "copy.db")));
    }

    [Fact]
    public async Task A_store_file_that_cannot_be_opened_is_named_by_migrate_and_at_server_start()
    {
        // A folder where the database file should be: SQLite cannot open it.
        var blocked = Directory.CreateDirectory(Path.Combine(_folder, "pit.db")).FullName;
        var migrate = await ServerCommandLine.RunAsync(_folder, "migrate", $"--Pit:Storage:ConnectionString=Data Source={blocked}");
        Assert.True(migrate.ExitCode == ServerCommands.Failed, migrate.ToString());
        var line = Assert.Single(migrate.ErrorLines);
        Assert.StartsWith("store error: SQLite Error 14: 'unable to open database file'.", line, StringComparison.Ordinal);
        Assert.EndsWith($"Database file: {blocked}", line, StringComparison.Ordinal);

        var error = await Assert.ThrowsAsync<SqliteException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Storage:ConnectionString"] = $"Data Source={blocked}" }));
        Assert.Contains($"Database file: {blocked}", error.Message, StringComparison.Ordinal);

        // A file where its folder should be: the folder cannot be made.
        var underFile = Path.Combine(_folder, "not-a-folder", "pit.db");
        await File.WriteAllTextAsync(Path.Combine(_folder, "not-a-folder"), "");
        var export = await ServerCommandLine.RunAsync(_folder, "audit-export", "--from", "2026-01-01", "--to", "2026-02-01", $"--Pit:Storage:ConnectionString=Data Source={underFile}");
        Assert.True(export.ExitCode == ServerCommands.Failed, export.ToString());
        line = Assert.Single(export.ErrorLines);
        Assert.StartsWith("store error: SQLite Error 14: 'unable to open database file': cannot create its folder", line, StringComparison.Ordinal);
        Assert.EndsWith($"Database file: {underFile}", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Audit_export_of_a_store_without_the_schema_says_where_it_looked()
    {
        var file = Path.Combine(_folder, "elsewhere", "pit.db");
        var export = await ServerCommandLine.RunAsync(_folder, "audit-export", "--from", "2026-01-01", "--to", "2026-02-01", $"--Pit:Storage:ConnectionString=Data Source={file}");
        Assert.True(export.ExitCode == ServerCommands.Failed, export.ToString());
        Assert.Equal($"store error: The store holds no PIT schema, so no audit log: {file}. Check Pit:Storage.", Assert.Single(export.ErrorLines));
        Assert.Empty(export.Output);
    }

    [Fact]
    public async Task A_relative_data_source_resolves_against_the_content_root()
    {
        var environment = new HostingEnvironment { ContentRootPath = "/srv/pit" };
        Assert.Equal("Data Source=/srv/pit/data/pit.db", SqliteSetup.ConnectionString(new StorageOptions(), environment));
        Assert.Equal("Data Source=/srv/pit/store/x.db", SqliteSetup.ConnectionString(new StorageOptions { ConnectionString = "Data Source=store/x.db" }, environment));
        Assert.Equal("Data Source=/var/lib/pit-server/pit.db",
            SqliteSetup.ConnectionString(new StorageOptions { ConnectionString = "Data Source=/var/lib/pit-server/pit.db" }, environment));

        // The same for a command: run from one folder with the content root in another.
        var contentRoot = Directory.CreateDirectory(Path.Combine(_folder, "root")).FullName;
        var migrate = await ServerCommandLine.RunAsync(_folder, "migrate", $"--contentRoot={contentRoot}", "--Pit:Storage:ConnectionString=Data Source=store/pit.db");
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        Assert.True(File.Exists(Path.Combine(contentRoot, "store", "pit.db")));
        Assert.False(Directory.Exists(Path.Combine(_folder, "store")));
    }

    [Fact]
    public async Task A_server_told_not_to_migrate_refuses_a_store_without_its_schema_until_migrate_has_run()
    {
        var settings = new Dictionary<string, string?> { ["Pit:Storage:MigrateOnStartup"] = "false" };
        var error = await Assert.ThrowsAsync<StoreSchemaException>(() => TestServer.StartAsync(settings, _folder));
        Assert.Contains($"this server needs version {SqliteSchema.Version}", error.Message, StringComparison.Ordinal);
        Assert.Contains("migrate", error.Message, StringComparison.Ordinal);

        var migrate = await ServerCommandLine.RunAsync(_folder, "migrate", $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(_folder, "pit.db")}");
        Assert.True(migrate.ExitCode == 0, migrate.ToString());
        await using var server = await TestServer.StartAsync(settings, _folder);
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("health/ready")).StatusCode);
    }

    [Fact]
    public async Task An_unknown_command_is_a_usage_error()
    {
        var result = await ServerCommandLine.RunAsync(_folder, "restore", "x.db");
        Assert.Equal(ServerCommands.UsageError, result.ExitCode);
        Assert.Equal("unknown command 'restore'; `Pit.Server --help` lists the commands.", Assert.Single(result.ErrorLines));
    }
}
