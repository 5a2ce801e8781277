using Microsoft.Data.Sqlite;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Tests.Storage;

/// <summary>The per-connection statement cache: statements are compiled once and their number stays bounded.</summary>
public sealed class SqliteStatementsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-statements-").FullName;

    [Fact]
    public async Task A_statement_run_again_on_the_same_connection_is_compiled_once()
    {
        using var statements = await OpenAsync();

        for (var i = 0; i < 100; i++)
        {
            using var select = statements.Get("SELECT $a + 1;", null, "$a");
            Assert.Equal(i + 1L, await select.With(i).ExecuteScalarAsync());
        }

        Assert.Equal(1, statements.Count);
        Assert.Equal(1, LiveStatements(statements.Connection));
    }

    [Fact]
    public async Task Past_its_bound_a_connection_runs_new_statements_without_keeping_them()
    {
        using var statements = await OpenAsync();

        for (var i = 0; i < SqliteStatements.MaxStatements + 20; i++)
        {
            using var select = statements.Get($"SELECT {i} + $a;", null, "$a");
            Assert.Equal(i + 1L, await select.With(1).ExecuteScalarAsync());
        }

        Assert.Equal(SqliteStatements.MaxStatements, statements.Count);
        Assert.Equal(SqliteStatements.MaxStatements, LiveStatements(statements.Connection));
    }

    [Fact]
    public async Task A_kept_statement_holds_no_parameter_value_after_its_use()
    {
        // Values may be health data or megabytes of content: a cached statement must not keep them alive.
        using var statements = await OpenAsync();
        SqliteCommand command;
        using (var select = statements.Get("SELECT length($content);", null, "$content"))
        {
            command = select.Command;
            Assert.Equal(3L, await select.With(new byte[3]).ExecuteScalarAsync());
        }

        Assert.Null(command.Parameters[0].Value);
        Assert.Null(command.Transaction);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }

    private async Task<SqliteStatements> OpenAsync()
    {
        var connection = new SqliteConnection($"Data Source={Path.Combine(_folder, "pit.db")}");
        await connection.OpenAsync();
        connection.Handle!.enable_sqlite3_next_stmt(true);
        return new SqliteStatements(connection);
    }

    /// <summary>The statements SQLite holds compiled on the connection (sqlite3_next_stmt).</summary>
    private static int LiveStatements(SqliteConnection connection)
    {
        var count = 0;
        for (var stmt = SQLitePCL.raw.sqlite3_next_stmt(connection.Handle, null); stmt is not null && !stmt.IsInvalid;
             stmt = SQLitePCL.raw.sqlite3_next_stmt(connection.Handle, stmt))
        {
            count++;
        }

        return count;
    }
}
