using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Npgsql;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.LoadTest;

/// <summary>
/// Times single GET pages over HTTP (one client, one request at a time) at the start, deep in and at the end of a
/// seeded feed, and prints the engine's plan for the page queries the server builds.
/// </summary>
internal static class FeedPages
{
    public static async Task MeasureAsync(ServerProcess server, FeedSeeder seeder, SeededFeed feed, string engine, int repeats)
    {
        using var client = server.CreateClient();
        var deepRow = feed.Count / 2;
        Console.WriteLine($"load average before: {LoadAverage()}");

        // Deep: the first page of _lastUpdated=ge<row deepRow>, then its next link (a cursor page); same for the end.
        var (deepStart, deepCursor, deepLast) = await FollowAsync(client, $"v1/Patient?_count=20&_lastUpdated=ge{Instant(feed.TimestampOf(deepRow - 1))}");
        var (_, lastCursor, _) = await FollowAsync(client, $"v1/Patient?_count=20&_lastUpdated=ge{Instant(feed.TimestampOf(feed.Count - 30))}");
        await ExpectAsync(client, deepCursor, 20, feed.TimestampOf(deepRow + 19), hasNext: true);
        await ExpectAsync(client, lastCursor, 10, feed.TimestampOf(feed.Count - 10), hasNext: false);
        await ExpectAsync(client, "v1/Patient?_count=20", 20, feed.TimestampOf(0), hasNext: true);

        var pages = new (string Name, string Url)[]
        {
            ("first page (_count=20)", "v1/Patient?_count=20"),
            ($"_lastUpdated=ge<row {deepRow:N0}> first page", deepStart),
            ($"cursor page, rows {deepRow + 20:N0}-{deepRow + 39:N0}", deepCursor),
            ("last page (cursor, 10 rows)", lastCursor),
            ("newest first (_sort=-_lastUpdated)", "v1/Patient?_count=20&_sort=-_lastUpdated"),
        };
        Console.WriteLine($"{feed.Count:N0} patients, {engine}, {repeats} sequential requests per page after 20 warm-up requests:");
        foreach (var (name, url) in pages)
        {
            var times = new List<double>(repeats);
            for (var i = 0; i < repeats + 20; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await client.GetAsync(url);
                await response.Content.CopyToAsync(Stream.Null);
                response.EnsureSuccessStatusCode();
                if (i >= 20)
                {
                    times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                }
            }

            times.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {name,-40} median {times[times.Count / 2],6:F2} ms  p90 {times[(int)(times.Count * 0.9)],6:F2} ms"));
        }

        Console.WriteLine($"load average after: {LoadAverage()}");

        // The query asks for Limit + 1 rows (KeysetQuery) to know whether there is a next page.
        var tenant = FeedSeeder.Tenant;
        var firstQuery = new PatientPageQuery(tenant, false, null, null, null, 20);
        var deepQuery = new PatientPageQuery(tenant, false, feed.TimestampOf(deepRow - 1), null, deepLast, 20);
        foreach (var (name, query) in new[] { ("first page", firstQuery), ("cursor page deep in the feed", deepQuery) })
        {
            Console.WriteLine($"plan, {name}:");
            foreach (var line in seeder.PostgresConnectionString is { } cs ? await PostgresPlanAsync(cs, query) : await SqlitePlanAsync(seeder, query))
            {
                Console.WriteLine("  " + line);
            }
        }
    }

    private static async Task<(string Start, string Next, PagePosition Last)> FollowAsync(HttpClient client, string url)
    {
        var page = JsonNode.Parse(await client.GetStringAsync(url))!;
        var entries = page["entry"]!.AsArray();
        var last = entries[^1]!["resource"]!;
        var next = (string?)page["link"]!.AsArray().First(l => (string?)l!["relation"] == "next")!["url"];
        var lastUpdated = FeedTime.FromDateTimeOffset(DateTimeOffset.Parse((string)last["meta"]!["lastUpdated"]!, CultureInfo.InvariantCulture));
        return (url, next!, new PagePosition(lastUpdated, (string)last["id"]!));
    }

    private static async Task ExpectAsync(HttpClient client, string url, int entries, long firstLastUpdated, bool hasNext)
    {
        var page = JsonNode.Parse(await client.GetStringAsync(url))!;
        var rows = page["entry"]!.AsArray();
        var first = (string)rows[0]!["resource"]!["meta"]!["lastUpdated"]!;
        var next = page["link"]!.AsArray().Any(l => (string?)l!["relation"] == "next");
        if (rows.Count != entries || first != FeedTime.Format(firstLastUpdated) || next != hasNext)
        {
            throw new InvalidOperationException($"{url}: {rows.Count} entries from {first}, next link {next}; expected {entries} from {FeedTime.Format(firstLastUpdated)}, next {hasNext}.");
        }
    }

    private static async Task<List<string>> PostgresPlanAsync(string connectionString, PatientPageQuery query)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var built = new NpgsqlCommand();
        PostgresPitStore.BuildSearch(built, query);
        var lines = new List<string> { built.CommandText };
        // Custom plan (parameters known), as for the first executions of a statement...
        await using (var explain = new NpgsqlCommand("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + built.CommandText, connection))
        {
            foreach (NpgsqlParameter p in built.Parameters)
            {
                explain.Parameters.Add(p.Clone());
            }

            lines.Add("-- custom plan:");
            lines.AddRange(await PostgresRows.FirstColumnAsync(explain));
        }

        // ...and the generic plan PostgreSQL may switch to for the server's auto-prepared statement.
        var literals = built.Parameters.Select(p => p.Value is string s ? $"'{s.Replace("'", "''", StringComparison.Ordinal)}'" : Convert.ToString(p.Value, CultureInfo.InvariantCulture));
        await using (var prepare = new NpgsqlCommand($"SET plan_cache_mode = force_generic_plan; PREPARE page AS {built.CommandText.TrimEnd(';')};", connection))
        {
            await prepare.ExecuteNonQueryAsync();
        }

        await using (var generic = new NpgsqlCommand($"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) EXECUTE page({string.Join(", ", literals)});", connection))
        {
            lines.Add("-- generic plan:");
            lines.AddRange(await PostgresRows.FirstColumnAsync(generic));
        }

        return lines;
    }

    private static async Task<List<string>> SqlitePlanAsync(FeedSeeder seeder, PatientPageQuery query)
    {
        await using var connection = await seeder.OpenSqliteAsync();
        await using var command = connection.CreateCommand();
        SqlitePitStore.BuildSearch(command, query);
        var lines = new List<string> { command.CommandText };
        command.CommandText = "EXPLAIN QUERY PLAN " + command.CommandText;
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add(reader.GetString(3));
        }

        return lines;
    }

    private static string Instant(long micros) => Uri.EscapeDataString(FeedTime.Format(micros));

    internal static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
}
