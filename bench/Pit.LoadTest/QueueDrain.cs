using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Npgsql;
using NpgsqlTypes;
using Pit.Server.Auth;
using Pit.Server.Storage;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.LoadTest;

/// <summary>
/// The apply drain rate on PostgreSQL: <c>drain [submissions=200000] [instances=1] [--organisations 100]</c>. Starts the
/// server instances over an empty queue, then commits the submissions into the queue directly (binary COPY, one
/// transaction, spread round-robin over the organisations, each a new Patient), and measures from that commit until
/// every submission is applied and (on a build with the sequencer) every version stamped. Reports submissions per
/// second, CPU per submission of PostgreSQL and of the servers, and the sequencer's database time per version
/// (<c>pg_stat_statements</c>, preloaded by the harness's own cluster in this mode).
/// </summary>
internal static class QueueDrain
{
    private const string FnrSystem = "urn:oid:2.16.578.1.12.4.1.4.1";

    public static async Task RunAsync(
        string serverDll, string dataDirectory, Dictionary<string, string?> settings, string connectionString, int? postmasterPid,
        int submissions, int instances, int organisations, TimeSpan maxRun)
    {
        // Migrate with a server that does not process, so the queue is empty when the measured instances start.
        settings["Pit:Processing:Enabled"] = "false";
        await (await ServerProcess.StartAsync(serverDll, Path.Combine(dataDirectory, "migrate"), settings)).DisposeAsync();
        settings["Pit:Processing:Enabled"] = "true";
        var sequenced = await ScalarAsync<bool>(connectionString,
            "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'patients' AND column_name = 'pending_version');");
        await ExecuteAsync(connectionString, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;");

        var servers = new List<ServerProcess>();
        try
        {
            for (var i = 0; i < instances; i++)
            {
                servers.Add(await ServerProcess.StartAsync(serverDll, Directory.CreateDirectory(Path.Combine(dataDirectory, $"instance-{i}")).FullName, settings));
            }

            var tenants = Enumerable.Range(1_000_000, 9_000_000).Select(n => $"9{n:D7}")
                .SelectMany(p => Enumerable.Range(0, 10).Select(d => p + d)).Where(OrganisationNumber.IsValid).Take(organisations).ToArray();
            var identities = new SyntheticIdentitySequence(1_000_000);
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var tx = await connection.BeginTransactionAsync();
            var fill = Stopwatch.StartNew();
            await using (var copy = await connection.BeginBinaryImportAsync(
                "COPY submissions (id, tenant, client_id, content, content_hash, key_systems, key_values, accepted_at) FROM STDIN (FORMAT BINARY)"))
            {
                var now = FeedTime.FromDateTimeOffset(DateTimeOffset.UtcNow);
                for (var i = 0; i < submissions; i++)
                {
                    var fnr = identities.Next();
                    var content = Encoding.UTF8.GetBytes(
                        $$"""{"resourceType":"Patient","identifier":[{"system":"{{FnrSystem}}","value":"{{fnr}}"}],"name":[{"family":"Nordmann","given":["Kari","Synnøve"]}],"gender":"female","birthDate":"1972-09-13","address":[{"line":["Storgata 1"],"postalCode":"0155","city":"Oslo"}]}""");
                    await copy.StartRowAsync();
                    await copy.WriteAsync(Guid.NewGuid(), NpgsqlDbType.Uuid);
                    await copy.WriteAsync(tenants[i % tenants.Length], NpgsqlDbType.Text);
                    await copy.WriteAsync("drain-client", NpgsqlDbType.Text);
                    await copy.WriteAsync(content, NpgsqlDbType.Bytea);
                    await copy.WriteAsync(SHA256.HashData(content), NpgsqlDbType.Bytea);
                    await copy.WriteAsync(new[] { FnrSystem }, NpgsqlDbType.Array | NpgsqlDbType.Text);
                    await copy.WriteAsync(new[] { fnr }, NpgsqlDbType.Array | NpgsqlDbType.Text);
                    await copy.WriteAsync(now, NpgsqlDbType.Bigint);
                }

                await copy.CompleteAsync();
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"queued {submissions:N0} submissions over {tenants.Length} organisations in {fill.Elapsed.TotalSeconds:F0} s (not committed yet)"));

            // Measured from the commit that makes the whole queue visible at once.
            await ExecuteAsync(connectionString, "SELECT pg_stat_statements_reset();");
            var usage = new ResourceUsage(servers[0].ProcessId, postmasterPid, connectionString);
            await usage.StartAsync(null);
            var serverCpu = servers.Select(s => Process.GetProcessById(s.ProcessId).TotalProcessorTime).ToList();
            await tx.CommitAsync();
            var clock = Stopwatch.StartNew();
            TimeSpan? applied = null;
            var lastReport = TimeSpan.Zero;
            while (true)
            {
                var queued = await ScalarAsync<long>(connectionString, $"SELECT count(*) FROM submissions WHERE state = {SubmissionStateSql.Queued};");
                var unstamped = sequenced ? await ScalarAsync<long>(connectionString, "SELECT count(*) FROM patients WHERE pending_version IS NOT NULL;") : 0;
                if (queued == 0)
                {
                    applied ??= clock.Elapsed;
                    if (unstamped == 0)
                    {
                        break;
                    }
                }

                if (clock.Elapsed - lastReport >= TimeSpan.FromSeconds(10))
                {
                    lastReport = clock.Elapsed;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {clock.Elapsed.TotalSeconds,5:F0} s: {submissions - queued:N0} applied, {unstamped:N0} waiting for a stamp"));
                }

                if (clock.Elapsed > maxRun || servers.Any(s => s.HasExited))
                {
                    Console.WriteLine(servers.Any(s => s.HasExited) ? "a server exited; stopping" : $"not drained within {maxRun}; stopping");
                    break;
                }

                await Task.Delay(100);
            }

            var elapsed = clock.Elapsed;
            var resources = await usage.StopAsync(elapsed);
            var serversCpu = servers.Select((s, i) => s.HasExited ? TimeSpan.Zero : Process.GetProcessById(s.ProcessId).TotalProcessorTime - serverCpu[i])
                .Sum(t => t.TotalSeconds);
            var done = submissions - await ScalarAsync<long>(connectionString, $"SELECT count(*) FROM submissions WHERE state = {SubmissionStateSql.Queued};");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"drain {instances} instance(s), {done:N0} of {submissions:N0} submissions over {tenants.Length} organisations: " +
                $"applied in {(applied ?? elapsed).TotalSeconds:F1} s, applied and stamped in {elapsed.TotalSeconds:F1} s = {done / elapsed.TotalSeconds:F0} submissions/s; " +
                $"servers' CPU {serversCpu:F1} s ({1000 * serversCpu / Math.Max(1, done):F3} ms per submission)"));
            Console.WriteLine(resources);
            Console.WriteLine($"load average at the end of the run (/proc/loadavg): {File.ReadAllText("/proc/loadavg").Trim()}");
            Console.WriteLine(await StatementsAsync(connectionString, done));
            Console.WriteLine(await ScalarAsync<string>(connectionString,
                "SELECT 'submissions by state: ' || string_agg(state || '=' || n, ', ' ORDER BY state) FROM (SELECT state, count(*) n FROM submissions GROUP BY state) s;"));
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    // The sequencer's three statements: its stamp (StampSql), the pending versions it takes (PendingSql), its clock.
    private const string StampStatement = "query LIKE '%SET version = p.pending_version%'";
    private const string PendingStatement = "query LIKE '%pending_version IS NOT NULL ORDER BY%'";
    private const string ClockStatement = "query LIKE 'SELECT coalesce(max(last_updated), 0) FROM patients%'";

    // Database time per submission, and the sequencer's share (its three statements) per version stamped, then each of
    // the three on a line of its own: calls, rows, total time.
    private static async Task<string> StatementsAsync(string connectionString, long submissions)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"""
            SELECT coalesce(sum(total_exec_time), 0),
                   coalesce(sum(total_exec_time) FILTER (WHERE {StampStatement} OR {PendingStatement} OR {ClockStatement}), 0),
                   coalesce(sum(rows) FILTER (WHERE {StampStatement}), 0),
                   coalesce(sum(calls) FILTER (WHERE {StampStatement}), 0)
            FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%count(*) FROM%';
            """, connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        var total = reader.GetDouble(0);
        var sequencer = reader.GetDouble(1);
        var stamped = reader.GetInt64(2);
        var ticks = reader.GetInt64(3);
        await reader.CloseAsync();
        var text = string.Create(CultureInfo.InvariantCulture,
            $"pg_stat_statements: {total / 1000:F1} s of statement execution = {total / Math.Max(1, submissions):F3} ms per submission");

        // Where the rest of the database time goes: the statements that took most, whichever build ran.
        await using (var top = new NpgsqlCommand("""
            SELECT calls, rows, total_exec_time, left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements
            WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%count(*) FROM%' ORDER BY total_exec_time DESC LIMIT 8;
            """, connection))
        await using (var rows = await top.ExecuteReaderAsync())
        {
            while (await rows.ReadAsync())
            {
                text += string.Create(CultureInfo.InvariantCulture,
                    $"{Environment.NewLine}  top: {rows.GetDouble(2) / 1000,6:F2} s = {1000 * rows.GetDouble(2) / Math.Max(1, submissions),5:F1} µs per submission, {rows.GetInt64(0),7:N0} calls, {rows.GetInt64(1),9:N0} rows: {rows.GetString(3)}");
            }
        }

        if (stamped == 0)
        {
            return text;
        }

        text += string.Create(CultureInfo.InvariantCulture,
            $"{Environment.NewLine}  sequencer {sequencer / 1000:F2} s over {ticks:N0} stamping transactions = {1000 * sequencer / stamped:F1} µs per version ({(double)stamped / Math.Max(1, ticks):F0} versions per transaction)");
        foreach (var (name, filter) in new[] { ("StampSql", StampStatement), ("PendingSql", PendingStatement), ("ClockSql", ClockStatement) })
        {
            await using var statement = new NpgsqlCommand(
                $"SELECT coalesce(sum(calls), 0), coalesce(sum(rows), 0), coalesce(sum(total_exec_time), 0) FROM pg_stat_statements WHERE {filter};", connection);
            await using var row = await statement.ExecuteReaderAsync();
            await row.ReadAsync();
            var time = row.GetDouble(2);
            text += string.Create(CultureInfo.InvariantCulture,
                $"{Environment.NewLine}  {name}: {row.GetInt64(0):N0} calls, {row.GetInt64(1):N0} rows, {time / 1000:F2} s = {1000 * time / stamped:F1} µs per version stamped");
        }

        return text;
    }

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
