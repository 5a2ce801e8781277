using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Pit.TestSupport;

// End-to-end load harness: starts the real server (Release build) as its own process on loopback, with its HelseID
// stand-in, and drives it through real HTTP with a DPoP proof minted per request (the client's signing cost runs on
// the same two cores, so the figures are a floor for the server alone).
//
//   dotnet run -c Release --project bench/Pit.LoadTest -- post 20 32
//   dotnet run -c Release --project bench/Pit.LoadTest -- get 20 32 [seedPatients]
//   add --postgres "Host=...;Username=...;Database=..." to run against PostgreSQL instead of a temp SQLite file.
var mode = args.ElementAtOrDefault(0) ?? "post";
var seconds = int.Parse(args.ElementAtOrDefault(1) ?? "20", CultureInfo.InvariantCulture);
var connections = int.Parse(args.ElementAtOrDefault(2) ?? "32", CultureInfo.InvariantCulture);
var seed = int.Parse(args.ElementAtOrDefault(3) is { } s && !s.StartsWith("--", StringComparison.Ordinal) ? s : "1000", CultureInfo.InvariantCulture);
var postgresIndex = Array.IndexOf(args, "--postgres");
var settings = new Dictionary<string, string?>();
if (postgresIndex >= 0)
{
    settings["Pit:Storage:Provider"] = "Postgres";
    settings["Pit:Storage:ConnectionString"] = args[postgresIndex + 1];
}

var data = Directory.CreateTempSubdirectory("pit-load-").FullName;
var serverDll = typeof(Pit.Server.PitApp).Assembly.Location;
await using var server = await ServerProcess.StartAsync(serverDll, data, settings);
var clients = Enumerable.Range(0, connections).Select(_ => server.CreateClient()).ToArray();
var identities = new SyntheticIdentities();

if (mode == "get")
{
    Console.WriteLine($"seeding {seed} patients...");
    await Parallel.ForEachAsync(Enumerable.Range(0, seed), new ParallelOptions { MaxDegreeOfParallelism = connections }, async (i, _) =>
    {
        using var response = await clients[i % connections].PostAsync("v1/Patient", Body(identities.Next()));
        response.EnsureSuccessStatusCode();
    });
    while (true)
    {
        var last = await clients[0].GetStringAsync("v1/Patient?_count=50&_sort=-_lastUpdated");
        var count = 0;
        string? next = "v1/Patient?_count=50";
        while (next is not null)
        {
            var page = System.Text.Json.Nodes.JsonNode.Parse(await clients[0].GetStringAsync(next))!;
            count += page["entry"]?.AsArray().Count ?? 0;
            next = (string?)page["link"]!.AsArray().FirstOrDefault(l => (string?)l!["relation"] == "next")?["url"];
        }

        if (count >= seed)
        {
            break;
        }

        await Task.Delay(200);
    }
}

// Warm-up (JIT, connection pools), then the measured run.
await RunAsync(TimeSpan.FromSeconds(3), record: false);
var (latencies, failures, elapsed) = await RunAsync(TimeSpan.FromSeconds(seconds), record: true);
latencies.Sort();
double P(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{mode} {(postgresIndex >= 0 ? "postgres" : "sqlite")} connections={connections} seconds={seconds}: {latencies.Count / elapsed.TotalSeconds:F0} req/s, " +
    $"p50 {P(0.50):F1} ms, p90 {P(0.90):F1} ms, p99 {P(0.99):F1} ms, max {P(1):F1} ms, non-success {failures}"));
Directory.Delete(data, recursive: true);

async Task<(List<double> Latencies, int Failures, TimeSpan Elapsed)> RunAsync(TimeSpan duration, bool record)
{
    var all = new List<double>[connections];
    var failed = 0;
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, connections).Select(async worker =>
    {
        var mine = all[worker] = new List<double>(100_000);
        var client = clients[worker];
        while (clock.Elapsed < duration)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = mode == "get"
                ? await client.GetAsync("v1/Patient?_count=20")
                : await client.PostAsync("v1/Patient", Body(identities.Next()));
            await response.Content.CopyToAsync(Stream.Null);
            if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Accepted))
            {
                Interlocked.Increment(ref failed);
            }
            else if (record)
            {
                mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }));
    return ([.. all.SelectMany(l => l)], failed, clock.Elapsed);
}

static StringContent Body(string fnr) => new(
    $$"""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{{fnr}}"}],"name":[{"family":"Nordmann","given":["Kari","Synnøve"]}],"gender":"female","birthDate":"1972-09-13","address":[{"line":["Storgata 1"],"postalCode":"0155","city":"Oslo"}]}""",
    Encoding.UTF8, "application/fhir+json");

/// <summary>Distinct synthetic fødselsnummer (month + 80) with valid control digits.</summary>
internal sealed class SyntheticIdentities
{
    private long _next;

    public string Next()
    {
        while (true)
        {
            var n = Interlocked.Increment(ref _next);
            var day = (int)(n % 28) + 1;
            var month = (int)(n / 28 % 12) + 81;
            var year = (int)(n / 336 % 100);
            var individual = (int)(n / 33600 % 500);
            var digits = string.Create(CultureInfo.InvariantCulture, $"{day:00}{month:00}{year:00}{individual:000}");
            var k1 = Control(digits, [3, 7, 6, 1, 8, 9, 4, 5, 2]);
            var k2 = k1 < 0 ? -1 : Control(digits + k1, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]);
            if (k2 >= 0)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{digits}{k1}{k2}");
            }
        }
    }

    private static int Control(string digits, int[] weights)
    {
        var sum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            sum += (digits[i] - '0') * weights[i];
        }

        var c = 11 - (sum % 11);
        return c == 11 ? 0 : c == 10 ? -1 : c;
    }
}
