using System.Net;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class ServerTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    [Fact]
    public async Task Metadata_is_a_capability_statement_describing_patient_read_create_and_search()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        var statement = await client.GetJsonAsync("v1/metadata", HttpStatusCode.OK);
        Assert.Equal("CapabilityStatement", (string?)statement["resourceType"]);
        Assert.Equal("4.0.1", (string?)statement["fhirVersion"]);
        var patient = statement["rest"]![0]!["resource"]![0]!;
        Assert.Equal("Patient", (string?)patient["type"]);
        Assert.Equal(["read", "create", "search-type"], patient["interaction"]!.AsArray().Select(i => (string?)i!["code"]));
        Assert.Equal(["_lastUpdated", "_count", "_sort", "cursor"], patient["searchParam"]!.AsArray().Select(i => (string?)i!["name"]));
    }

    [Fact]
    public async Task Health_endpoints_report_live_and_ready()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("health/ready")).StatusCode);
    }

    [Fact]
    public async Task Unknown_routes_and_methods_answer_with_an_operation_outcome()
    {
        using var client = fixture.Server.CreateClient();
        PitApi.AssertOutcome(await client.GetJsonAsync("v1/Observation", HttpStatusCode.NotFound), "not-found");
        var (status, body) = await client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Delete, "v1/Patient"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, status);
        PitApi.AssertOutcome(body, "not-supported");
    }

    [Fact]
    public async Task The_migrate_command_creates_the_schema_and_exits()
    {
        var folder = Directory.CreateTempSubdirectory("pit-migrate-").FullName;
        try
        {
            var file = Path.Combine(folder, "pit.db");
            var info = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { typeof(PitApp).Assembly.Location, "migrate", "--environment=Production", $"--Pit:Storage:ConnectionString=Data Source={file}" })
            {
                info.ArgumentList.Add(arg);
            }

            using var process = System.Diagnostics.Process.Start(info)!;
            var output = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();

            Assert.True(process.ExitCode == 0, output + await process.StandardError.ReadToEndAsync());
            Assert.Contains($"Schema is up to date (version {Pit.Server.Storage.Sqlite.SqliteSchema.Version}) in {file}.", output);
            await using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={file};Pooling=false");
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('patients', 'submissions', 'audit_log')";
            Assert.Equal(3L, await command.ExecuteScalarAsync());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
