using Npgsql;

namespace Pit.TestSupport;

/// <summary>Reading small text results in tests and harnesses.</summary>
public static class PostgresRows
{
    /// <summary>The first column of every row <paramref name="command"/> returns, as text (an EXPLAIN's plan lines).</summary>
    public static async Task<List<string>> FirstColumnAsync(NpgsqlCommand command)
    {
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }
}
