using System.Text.Json.Nodes;
using Pit.Server.Audit;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Tests.Storage;

namespace Pit.Server.Tests.Audit;

/// <summary>The <c>audit-export</c> command on each engine: NDJSON of the range, oldest first, for one organisation.</summary>
public abstract class AuditExportCommandTests
{
    private static readonly DateTimeOffset Day = new(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);

    private protected abstract Task<(StoreTestDatabase Database, string[] StoreArguments)> CreateAsync();

    [Fact]
    public async Task Audit_export_writes_the_entries_of_the_range_as_ndjson_to_the_file()
    {
        var (db, storeArguments) = await CreateAsync();
        await using var _ = db;
        var store = await db.OpenStoreAsync();
        var before = RetentionContractTests.Entry(Day.AddSeconds(-1), "999999999");
        var first = RetentionContractTests.Entry(Day, "999999999");
        var other = RetentionContractTests.Entry(Day.AddHours(1), "888888888") with { OrgnrChild = "974600951", PatientIds = null };
        var last = RetentionContractTests.Entry(Day.AddHours(23), "999999999");
        var after = RetentionContractTests.Entry(Day.AddDays(1), "999999999");
        await store.Audit.AppendAuditAsync([after, last, other, first, before], CancellationToken.None);
        var folder = Directory.CreateTempSubdirectory("pit-export-").FullName;
        try
        {
            var file = Path.Combine(folder, "audit.ndjson");
            var (code, _, errors) = await RunAsync([.. Arguments("--from", "2026-03-01", "--to", "2026-03-02", "--out", file), .. storeArguments]);
            Assert.True(code == 0, errors);
            Assert.Contains("Exported 3 audit entries.", errors);
            var lines = await File.ReadAllLinesAsync(file);
            Assert.Equal([first.SubmissionId.ToString(), other.SubmissionId.ToString(), last.SubmissionId.ToString()], lines.Select(l => (string?)JsonNode.Parse(l)!["submissionId"]));
            var line = JsonNode.Parse(lines[1])!;
            Assert.Equal("2026-03-01T01:00:00.000000Z", (string)line["at"]!);
            Assert.Equal("read", (string)line["action"]!);
            Assert.Equal("client-1", (string)line["clientId"]!);
            Assert.Equal("888888888", (string)line["organisation"]!);
            Assert.Equal("974600951", (string)line["orgnrChild"]!);
            Assert.Null(line["patientIds"]);
            Assert.Equal(200, (int)line["status"]!);
            Assert.Equal("ok", (string)line["outcome"]!);

            var (_, output, _) = await RunAsync([.. Arguments("--from", "2026-03-01T00:00:00Z", "--to", "2026-03-02T00:00:00+00:00", "--organisation", "999999999"), .. storeArguments]);
            Assert.Equal([first.SubmissionId.ToString(), last.SubmissionId.ToString()],
                output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => (string?)JsonNode.Parse(l)!["submissionId"]));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("--from", "2026-03-02", "--to", "2026-03-01")]
    [InlineData("--from", "yesterday", "--to", "2026-03-01")]
    [InlineData("--to", "2026-03-01")]
    [InlineData("--from", "2026-03-01", "--to", "2026-03-02", "--organisation", "12345")]
    public async Task Audit_export_with_a_bad_range_or_organisation_is_a_usage_error(params string[] args)
    {
        var (code, output, errors) = await RunAsync(args);
        Assert.Equal(AuditExportCommand.UsageError, code);
        Assert.Empty(output);
        Assert.Contains("usage: audit-export", errors);
    }

    private static string[] Arguments(params string[] args) => args;

    private static async Task<(int Code, string Output, string Errors)> RunAsync(string[] args)
    {
        using var output = new MemoryStream();
        using var errors = new StringWriter();
        string[] common = ["--environment=Production", "--Pit:Auth:Authority=https://helseid-sts.test.nhn.no"];
        var code = await AuditExportCommand.RunAsync([.. args, .. common], output, errors, CancellationToken.None);
        return (code, System.Text.Encoding.UTF8.GetString(output.ToArray()), errors.ToString());
    }
}

public sealed class SqliteAuditExportCommandTests : AuditExportCommandTests
{
    private protected override Task<(StoreTestDatabase, string[])> CreateAsync()
    {
        var db = new SqliteTestDatabase();
        return Task.FromResult<(StoreTestDatabase, string[])>((db, [$"--Pit:Storage:ConnectionString={db.ConnectionString}"]));
    }
}

public sealed class PostgresAuditExportCommandTests(PostgresServer server) : AuditExportCommandTests, IClassFixture<PostgresServer>
{
    private protected override async Task<(StoreTestDatabase, string[])> CreateAsync()
    {
        var db = await PostgresTestDatabase.CreateAsync(server);
        return (db, ["--Pit:Storage:Provider=Postgres", $"--Pit:Storage:ConnectionString={db.ConnectionString}"]);
    }
}
