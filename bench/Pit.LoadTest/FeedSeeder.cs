using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;
using Pit.Server.Upsert;

namespace Pit.LoadTest;

/// <summary>Where a seed run put its rows: row <c>i</c> (0-based) has lastUpdated <c>First + i * Step</c>.</summary>
internal sealed record SeededFeed(long First, long Step, int Count)
{
    public long TimestampOf(int row) => First + (row * Step);
}

/// <summary>
/// Writes Patients straight into an engine's own schema (already migrated by the server), bypassing HTTP: stored JSON
/// built by <see cref="PatientJson.Compose"/>, version 1, distinct random ids, strictly increasing lastUpdated one
/// millisecond apart ending before now, one tenant, one fødselsnummer each with its patient_keys row. Big
/// transactions: binary COPY on PostgreSQL, prepared inserts on SQLite.
/// </summary>
internal sealed class FeedSeeder(string? postgresConnectionString, string sqliteFile, string tenant)
{
    /// <summary>The organisation the harness's clients act for (ServerProcess.CreateClient's default).</summary>
    public const string Tenant = "974762501";

    private const string FnrSystem = "urn:oid:2.16.578.1.12.4.1.4.1";
    private const int RowsPerTransaction = 50_000;
    private const long Step = 1000;

    public string? PostgresConnectionString => postgresConnectionString;

    public string SqliteFile => sqliteFile;

    public async Task<SeededFeed> SeedAsync(int count)
    {
        var clock = Stopwatch.StartNew();
        var first = FeedTime.FromDateTimeOffset(DateTimeOffset.UtcNow) - ((count + 1) * Step);
        var (existingMax, existingRows) = postgresConnectionString is null ? await SqliteExistingAsync() : await PostgresExistingAsync();
        first = Math.Max(first, existingMax + 1);
        var feed = new SeededFeed(first, Step, count);

        // A second seed into the same store goes on after the rows already there: later timestamps, and identities
        // further along the harness's sequence (which its HTTP runs use from the start as well). About one candidate in
        // six fails its control digits, so skipping twice as many candidates as there are rows passes the used ones.
        var identities = new SyntheticIdentitySequence(existingRows * 2);
        for (var start = 0; start < count; start += RowsPerTransaction)
        {
            var rows = Enumerable.Range(start, Math.Min(RowsPerTransaction, count - start))
                .Select(i => NewRow(feed.TimestampOf(i), identities.Next())).ToList();
            if (postgresConnectionString is null)
            {
                await SqliteWriteAsync(rows);
            }
            else
            {
                await PostgresWriteAsync(rows);
            }

            Console.Write(string.Create(CultureInfo.InvariantCulture, $"\rseeded {start + rows.Count:N0} of {count:N0}"));
        }

        if (postgresConnectionString is not null)
        {
            // What autovacuum's analyze would do after a load this size; the server itself never runs ANALYZE.
            await using var connection = new NpgsqlConnection(postgresConnectionString);
            await connection.OpenAsync();
            await using var analyze = new NpgsqlCommand("ANALYZE patients; ANALYZE patient_keys;", connection) { CommandTimeout = 600 };
            await analyze.ExecuteNonQueryAsync();
        }
        else
        {
            await using var connection = await OpenSqliteAsync();
            await using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
            await checkpoint.ExecuteNonQueryAsync();
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"\rseeded {count:N0} patients in {clock.Elapsed.TotalSeconds:F0} s ({count / clock.Elapsed.TotalSeconds:F0} rows/s), {RowsPerTransaction:N0} per transaction"));
        return feed;
    }

    private Row NewRow(long lastUpdated, string fnr)
    {
        var content = Encoding.UTF8.GetBytes(
            $$"""{"resourceType":"Patient","identifier":[{"system":"{{FnrSystem}}","value":"{{fnr}}"}],"name":[{"family":"Nordmann","given":["Kari","Synnøve"]}],"gender":"female","birthDate":"1972-09-13","address":[{"line":["Storgata 1"],"postalCode":"0155","city":"Oslo"}]}""");
        var id = ApplyPlanner.NewPatientId();
        return new Row(id, lastUpdated, SHA256.HashData(content), PatientJson.Compose(content, id, 1, lastUpdated, tenant), fnr);
    }

    private async Task PostgresWriteAsync(List<Row> rows)
    {
        await using var connection = new NpgsqlConnection(postgresConnectionString);
        await connection.OpenAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var patients = await connection.BeginBinaryImportAsync(
            "COPY patients (id, tenant, version, last_updated, content_hash, last_seq, json) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var r in rows)
            {
                await patients.StartRowAsync();
                await patients.WriteAsync(r.Id, NpgsqlDbType.Text);
                await patients.WriteAsync(tenant, NpgsqlDbType.Text);
                await patients.WriteAsync(1, NpgsqlDbType.Integer);
                await patients.WriteAsync(r.LastUpdated, NpgsqlDbType.Bigint);
                await patients.WriteAsync(r.Hash, NpgsqlDbType.Bytea);
                await patients.WriteAsync(0L, NpgsqlDbType.Bigint);
                await patients.WriteAsync(r.Json, NpgsqlDbType.Bytea);
            }

            await patients.CompleteAsync();
        }

        await using (var keys = await connection.BeginBinaryImportAsync(
            "COPY patient_keys (tenant, system, value, patient_id) FROM STDIN (FORMAT BINARY)"))
        {
            foreach (var r in rows)
            {
                await keys.StartRowAsync();
                await keys.WriteAsync(tenant, NpgsqlDbType.Text);
                await keys.WriteAsync(FnrSystem, NpgsqlDbType.Text);
                await keys.WriteAsync(r.Fnr, NpgsqlDbType.Text);
                await keys.WriteAsync(r.Id, NpgsqlDbType.Text);
            }

            await keys.CompleteAsync();
        }

        await tx.CommitAsync();
    }

    private async Task<(long Max, long Rows)> PostgresExistingAsync()
    {
        await using var connection = new NpgsqlConnection(postgresConnectionString);
        await connection.OpenAsync();
        await using var max = new NpgsqlCommand("SELECT coalesce(max(last_updated), 0), count(*) FROM patients;", connection);
        await using var reader = await max.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private async Task SqliteWriteAsync(List<Row> rows)
    {
        await using var connection = await OpenSqliteAsync();
        await using var tx = connection.BeginTransaction();
        await using var patient = connection.CreateCommand();
        patient.Transaction = tx;
        patient.CommandText = """
            INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
            VALUES ($id, $tenant, 1, $lu, $hash, 0, $json);
            """;
        var id = patient.Parameters.Add("$id", SqliteType.Text);
        patient.Parameters.AddWithValue("$tenant", tenant);
        var lu = patient.Parameters.Add("$lu", SqliteType.Integer);
        var hash = patient.Parameters.Add("$hash", SqliteType.Blob);
        var json = patient.Parameters.Add("$json", SqliteType.Blob);
        patient.Prepare();
        await using var key = connection.CreateCommand();
        key.Transaction = tx;
        key.CommandText = "INSERT INTO patient_keys (tenant, system, value, patient_id) VALUES ($tenant, $system, $value, $id);";
        key.Parameters.AddWithValue("$tenant", tenant);
        key.Parameters.AddWithValue("$system", FnrSystem);
        var value = key.Parameters.Add("$value", SqliteType.Text);
        var keyId = key.Parameters.Add("$id", SqliteType.Text);
        key.Prepare();
        foreach (var r in rows)
        {
            id.Value = r.Id;
            lu.Value = r.LastUpdated;
            hash.Value = r.Hash;
            json.Value = r.Json;
            await patient.ExecuteNonQueryAsync();
            value.Value = r.Fnr;
            keyId.Value = r.Id;
            await key.ExecuteNonQueryAsync();
        }

        await tx.CommitAsync();
    }

    private async Task<(long Max, long Rows)> SqliteExistingAsync()
    {
        await using var connection = await OpenSqliteAsync();
        await using var max = connection.CreateCommand();
        max.CommandText = "SELECT coalesce(max(last_updated), 0), count(*) FROM patients;";
        await using var reader = await max.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public async Task<SqliteConnection> OpenSqliteAsync()
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = sqliteFile, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;";
        await pragma.ExecuteNonQueryAsync();
        return connection;
    }

    private sealed record Row(string Id, long LastUpdated, byte[] Hash, byte[] Json, string Fnr);
}
