using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>A server process on PostgreSQL killed with SIGKILL under load, then started again over the same database.</summary>
public sealed class PostgresCrashTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("pit-pg-crash-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task Killing_a_server_under_load_loses_no_accepted_submission_and_applies_none_twice()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await server.CreateDatabaseAsync(),
            ["Pit:Processing:BatchSize"] = "16",
        };
        await KillUnderLoad.RunAsync(_data, settings);
    }
}
