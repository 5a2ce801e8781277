using Npgsql;
using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>A throw-away PostgreSQL primary with one streaming standby of it (<c>pg_basebackup -R</c>), as an xUnit fixture.</summary>
public sealed class PostgresStandbyPair : IAsyncLifetime
{
    /// <summary>The primary: writes, the apply loop, LISTEN.</summary>
    public PostgresCluster Primary { get; } = new();

    /// <summary>The hot standby streaming from <see cref="Primary"/>.</summary>
    public PostgresCluster Standby { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Primary.InitializeAsync();
        Standby = await Primary.StartStandbyAsync();
    }

    /// <summary>A new database on the primary, once the standby has it too: its connection strings on both.</summary>
    public async Task<(string Primary, string Standby)> CreateDatabaseAsync()
    {
        var primary = await Primary.CreateDatabaseAsync();
        await Standby.WaitForReplayOfAsync(Primary);
        return (primary, Standby.ConnectionString(new NpgsqlConnectionStringBuilder(primary).Database!));
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Standby is not null)
            {
                await Standby.DisposeAsync();
            }
        }
        finally
        {
            await Primary.DisposeAsync();
        }
    }
}
