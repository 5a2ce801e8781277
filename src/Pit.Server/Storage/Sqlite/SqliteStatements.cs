using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// The prepared statements of one open connection, by SQL text. A <see cref="SqliteCommand"/> keeps its compiled
/// statements until its text or connection changes, so a command made once per connection and run again is parsed and
/// planned once; a command made per call is parsed and planned on every call (a third of SQLite's CPU under load,
/// docs/PERFORMANCE.md). The server's SQL texts are a fixed set (the keyset query has a few dozen shapes at most), and
/// past <see cref="MaxStatements"/> a statement is prepared for the one call and disposed with it, so the cache stays
/// bounded whatever callers do. Not thread-safe: a connection is used by one caller at a time.
/// </summary>
internal sealed class SqliteStatements(SqliteConnection connection) : IDisposable
{
    /// <summary>Statements kept per connection.</summary>
    public const int MaxStatements = 48;

    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

    public SqliteConnection Connection { get; } = connection;

    /// <summary>
    /// The prepared command for <paramref name="sql"/>, enlisted in <paramref name="tx"/>, with one parameter per name
    /// in <paramref name="parameters"/> (in that order; the caller sets their values). Dispose the lease after the
    /// command and its reader are done: a cached command stays with the connection, a one-off one is disposed.
    /// </summary>
    public Lease Get(string sql, SqliteTransaction? tx, params ReadOnlySpan<string> parameters)
    {
        if (!_commands.TryGetValue(sql, out var command))
        {
            command = Connection.CreateCommand();
            command.CommandText = sql;
            foreach (var name in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Transaction = tx;
            command.Prepare();
            if (_commands.Count >= MaxStatements)
            {
                return new Lease(command, owned: true);
            }

            _commands.Add(sql, command);
        }

        command.Transaction = tx;
        return new Lease(command, owned: false);
    }

    /// <summary>How many statements this connection keeps (for tests).</summary>
    public int Count => _commands.Count;

    public void Dispose()
    {
        foreach (var command in _commands.Values)
        {
            command.Dispose();
        }

        _commands.Clear();
        Connection.Dispose();
    }

    /// <summary>A command handed out by <see cref="Get"/>; disposing it keeps a cached command and disposes a one-off one.</summary>
    internal readonly struct Lease(SqliteCommand command, bool owned) : IDisposable
    {
        public SqliteCommand Command { get; } = command;

        /// <summary>Sets the parameters in order and returns the command.</summary>
        public SqliteCommand With(params ReadOnlySpan<object?> values)
        {
            for (var i = 0; i < values.Length; i++)
            {
                Command.Parameters[i].Value = values[i] ?? DBNull.Value;
            }

            return Command;
        }

        public void Dispose()
        {
            if (owned)
            {
                Command.Dispose();
            }
            else
            {
                // A cached command must not keep a transaction that is about to end, nor values that may be health data.
                Command.Transaction = null;
                foreach (SqliteParameter parameter in Command.Parameters)
                {
                    parameter.Value = null;
                }
            }
        }
    }
}
