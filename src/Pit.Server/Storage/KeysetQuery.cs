namespace Pit.Server.Storage;

/// <summary>
/// The keyset page query every engine runs: bounds on last_updated, a row comparison on (last_updated, id) after
/// the last row returned, and ORDER BY the same columns, so it is a range scan on (last_updated, id), or on
/// (tenant, last_updated, id) when the tenant is fixed. Engines differ only in how parameters are written. Each row
/// carries the byte length of its JSON ahead of the JSON, so the reader can stop at the page's byte cap
/// (<see cref="StoredRows.PatientPageAsync"/>) without loading the row that does not fit.
/// </summary>
internal static class KeysetQuery
{
    /// <summary>
    /// The SQL text for <paramref name="query"/>; <paramref name="parameter"/> adds a parameter value to the engine's
    /// command and returns its placeholder. <paramref name="visible"/> is the engine's condition for a row being in the
    /// feed at all, if it has one (PostgreSQL: stamped).
    /// </summary>
    public static string Build(PatientPageQuery query, Func<object, string> parameter, string? visible = null)
    {
        var where = new List<string>(5);
        if (visible is not null)
        {
            where.Add(visible);
        }

        if (query.Tenant is not null)
        {
            where.Add($"tenant = {parameter(query.Tenant)}");
        }

        if (query.From is { } from)
        {
            where.Add($"last_updated >= {parameter(from)}");
        }

        if (query.To is { } to)
        {
            where.Add($"last_updated < {parameter(to)}");
        }

        if (query.After is { } after)
        {
            var position = $"({parameter(after.LastUpdated)}, {parameter(after.Id)})";
            where.Add(query.Descending ? $"(last_updated, id) < {position}" : $"(last_updated, id) > {position}");
        }

        var direction = query.Descending ? "DESC" : "ASC";
        // One row past the limit tells whether a next page exists; StoredRows.PatientPageAsync reads its size, not its JSON.
        return string.Concat(
            $"SELECT {StoredRows.PatientPageColumns} FROM patients",
            where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "",
            $" ORDER BY last_updated {direction}, id {direction} LIMIT {parameter(query.Limit + 1)};");
    }
}
