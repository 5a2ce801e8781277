using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Pit.LoadTest;
using Pit.TestSupport;

// End-to-end load harness: starts the real server (Release build) as its own process on loopback, with its HelseID
// stand-in, and drives it through real HTTP with a DPoP proof minted per request (the client's signing cost runs on
// the same two cores, so the figures are a floor for the server alone).
//
//   dotnet run -c Release --project bench/Pit.LoadTest -- post 20 32
//   dotnet run -c Release --project bench/Pit.LoadTest -- get 20 32 [seedPatients]
//   dotnet run -c Release --project bench/Pit.LoadTest -- post-ceiling 20 32   (and get-ceiling: the same load against
//       the server's authentication alone, no parsing or storage; CeilingHost.cs)
//   dotnet run -c Release --project bench/Pit.LoadTest -- pages 1000000     (seed directly, then time feed pages)
//   dotnet run -c Release --project bench/Pit.LoadTest -- drain [submissions=200000] [instances=1] --postgres-start
//       [--organisations 100] [--max-seconds 1800]     (apply drain rate over several instances; QueueDrain.cs)
//   dotnet run -c Release --project bench/Pit.LoadTest -- stalled [readers=8] [patients=30] [patientBytes=880000]
//       (readers that never read a large page: the server's memory; StalledReaders.cs)
// --server-dll path/Pit.Server.dll runs another build of the server (e.g. an earlier commit's) under this harness.
//   dotnet run -c Release --project bench/Pit.LoadTest -- seed 1000000 --postgres "..." | --sqlite path/pit.db
//   dotnet run -c Release --project bench/Pit.LoadTest -- soak [--minutes 10 | --seconds N] [--clients 64]
//       [--connections 32] [--interval 10] [--postgres-start] [--no-thresholds]     (see Soak.cs)
//   dotnet run -c Release --project bench/Pit.LoadTest -- bodies [--requests 512] [--bytes 880000] [--max-rss-mb 600]
//       [--postgres-start] [--set Pit:Processing:MaxInFlightBodyBytes=...]     (see BodyFlood.cs)
//   dotnet run -c Release --project bench/Pit.LoadTest -- get 60 32 --rate-limit 200
//       (the per-client limit on: one client floods on every connection while a quiet client of another organisation
//       sends 20 requests/s; prints what each got)
//   dotnet run -c Release --project bench/Pit.LoadTest -- get 30 32 --postgres-start --standby
//       (also starts a streaming standby of the throw-away cluster and runs twice in one sitting: reads on the primary,
//       then Pit:Storage:ReadConnectionString on the standby; PostgreSQL CPU of each apart, and primary CPU per GET)
// Storage: a temp SQLite file by default; --postgres "Host=...;Username=...;Database=..." for an existing database;
// --diagnose also counts the server process's fsync/fdatasync/pwrite64 calls during the measured run (`perf stat`, root) and
// reads its group-commit batch sizes (`dotnet-counters`); both tools add a little load of their own.
// --warmup N (default 60) seconds of load before the measured run, so tiered compilation has reached the hot path;
// --environment NAME (default LoadTest) runs the server in that environment (the stand-in is allowed in it), not in
// Development.
// --postgres-start for a throw-away cluster from /usr/lib/postgresql/*/bin (initdb/pg_ctl in a temp folder, as the
// postgres user when run as root), removed at the end.
if (Environment.GetEnvironmentVariable(CeilingHost.EnvironmentVariable) is not null)
{
    // This process was started by the harness as the ceiling host, not as the harness.
    await CeilingHost.RunAsync(args);
    return;
}

var mode = args.ElementAtOrDefault(0) ?? "post";
// post-ceiling and get-ceiling: the same load against the server's authentication alone (CeilingHost.cs).
var ceiling = mode.EndsWith("-ceiling", StringComparison.Ordinal);
if (ceiling)
{
    mode = mode[..^"-ceiling".Length];
}

if (mode == "soak")
{
    Environment.ExitCode = await Soak.RunAsync(args[1..], Console.Out);
    return;
}

if (mode == "bodies")
{
    Environment.ExitCode = await BodyFlood.RunAsync(args[1..], Console.Out);
    return;
}

var postgresStart = args.Contains("--postgres-start");
// The value after an --option, or null when the option is not given.
string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 ? args[i + 1] : null;
string? connectionString = Option("--postgres");
var engine = ceiling ? "ceiling (auth only, no storage)" : postgresStart || connectionString is not null ? "postgres" : "sqlite";
var positional = args.Skip(1).TakeWhile(a => !a.StartsWith("--", StringComparison.Ordinal)).ToArray();
int Positional(int index, int fallback) =>
    positional.Length > index ? int.Parse(positional[index], CultureInfo.InvariantCulture) : fallback;

var diagnose = args.Contains("--diagnose");
await using var cluster = postgresStart
    ? new PostgresCluster { SharedBuffers = "128MB", ExtraSettings = diagnose || mode == "drain" ? "shared_preload_libraries = 'pg_stat_statements'" : "" }
    : null;
if (cluster is not null)
{
    await cluster.InitializeAsync();
    connectionString = await cluster.CreateDatabaseAsync();
    Console.WriteLine($"started a throw-away PostgreSQL cluster on port {cluster.Port}");
}

// Declared after the cluster, so disposed (stopped) before it.
await using var standby = args.Contains("--standby")
    ? await (cluster ?? throw new ArgumentException("--standby needs --postgres-start.")).StartStandbyAsync()
    : null;
if (standby is not null)
{
    Console.WriteLine($"started a streaming standby of it on port {standby.Port}");
}

// The harness measures the server's capacity with a few clients, so the per-client rate limit must not cap them.
var rateLimit = Option("--rate-limit") is { } limit ? int.Parse(limit, CultureInfo.InvariantCulture) : (int?)null;
var settings = new Dictionary<string, string?> { ["Pit:RateLimiting:Enabled"] = rateLimit is null ? "false" : "true" };
// Likewise the replay cache's per-client share (a quarter of 20,000 proofs/s by default): the harness is one client, and
// the auth-only ceiling host passes 5,000 requests/s, where its proofs were answered 429 instead of being measured.
settings["Pit:Auth:DPoP:ReplayCacheProofsPerSecond"] = "80000";
HarnessSettings.UseEnvironment(settings, Option("--environment") ?? HarnessSettings.DefaultEnvironment);
var warmup = TimeSpan.FromSeconds(int.Parse(Option("--warmup") ?? "60", CultureInfo.InvariantCulture));
if (rateLimit is { } permits)
{
    settings["Pit:RateLimiting:PermitsPerSecond"] = permits.ToString(CultureInfo.InvariantCulture);
    settings["Pit:RateLimiting:Burst"] = (2 * permits).ToString(CultureInfo.InvariantCulture);
}

if (connectionString is not null)
{
    settings["Pit:Storage:Provider"] = "Postgres";
    settings["Pit:Storage:ConnectionString"] = connectionString;
}

// --server-dll path/Pit.Server.dll measures another build of the server (e.g. an earlier commit's) with this harness.
var serverDll = Option("--server-dll") is { } otherDll ? Path.GetFullPath(otherDll) : typeof(Pit.Server.PitApp).Assembly.Location;
var data = Directory.CreateTempSubdirectory("pit-load-").FullName;
try
{
    if (mode == "seed")
    {
        // Into an existing store: start the server once so its schema exists, then write rows directly.
        var sqliteFile = Option("--sqlite") is { } sqlite ? Path.GetFullPath(sqlite) : null;
        if (sqliteFile is null && connectionString is null)
        {
            throw new ArgumentException("seed needs --postgres <connection string>, --postgres-start or --sqlite <file>.");
        }

        if (sqliteFile is not null)
        {
            settings["Pit:Storage:ConnectionString"] = $"Data Source={sqliteFile}";
        }

        await (await ServerProcess.StartAsync(serverDll, data, settings)).DisposeAsync();
        var seeder = new FeedSeeder(connectionString, sqliteFile ?? "", FeedSeeder.Tenant);
        await seeder.SeedAsync(Positional(0, 1_000_000));
        return;
    }

    if (mode == "drain")
    {
        await QueueDrain.RunAsync(
            serverDll, data, settings, connectionString ?? throw new ArgumentException("drain needs --postgres-start or --postgres <connection string>."),
            cluster?.PostmasterProcessId, Positional(0, 200_000), Positional(1, 1), int.Parse(Option("--organisations") ?? "100", CultureInfo.InvariantCulture),
            TimeSpan.FromSeconds(int.Parse(Option("--max-seconds") ?? "1800", CultureInfo.InvariantCulture)));
        return;
    }

    if (mode == "pages")
    {
        var count = Positional(0, 1_000_000);
        await using var pageServer = await ServerProcess.StartAsync(serverDll, data, settings);
        var seeder = new FeedSeeder(connectionString, Path.Combine(data, "pit.db"), FeedSeeder.Tenant);
        var seeded = await seeder.SeedAsync(count);
        await FeedPages.MeasureAsync(pageServer, seeder, seeded, engine, Positional(1, 200));
        return;
    }

    if (mode == "stalled")
    {
        // Readers that ask for a _count=50 page of ~880 KB Patients and never read it (StalledReaders.cs).
        await using var stalledServer = await ServerProcess.StartAsync(serverDll, data, settings);
        Console.WriteLine($"server {serverDll}, {engine}; load average before: {FeedPages.LoadAverage()}");
        var result = await StalledReaders.RunAsync(stalledServer, Positional(0, 8), Positional(1, 30), Positional(2, 880_000), Console.Out);
        Console.WriteLine($"load average after: {FeedPages.LoadAverage()}");
        Console.WriteLine($"page {result.PageBytes} bytes ({result.PageEntries} entries of {result.PatientBytes} bytes); " +
            $"RSS {result.BaselineRss / 1e6:F0} -> {result.StalledRss / 1e6:F0} MB with {result.Readers} stalled readers " +
            $"({result.GrowthPerReader / 1e6:F1} MB each); other organisation {(int)result.OtherOrganisationStatus} in {result.OtherOrganisationSeconds:F2} s");
        return;
    }

    if (standby is not null)
    {
        // One sitting: reads on the primary, then on the standby (same data, same warm-up, same measured length).
        await RunLoadAsync(null);
        await RunLoadAsync(standby.ConnectionString(new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database!));
    }
    else
    {
        await RunLoadAsync(null);
    }
}
finally
{
    Directory.Delete(data, recursive: true);
}

// How fast this machine is right now: the server's dominant fixed cost per request is one ES256 verification, so its
// time on one thread says how far figures from different days (or a VM with a busy neighbour) can be compared.
static double Es256VerifyMicroseconds()
{
    using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
    var data = Encoding.ASCII.GetBytes("eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJjYWxpYnJhdGlvbiJ9");
    var signature = key.SignData(data, System.Security.Cryptography.HashAlgorithmName.SHA256);
    void Verify(int count)
    {
        for (var i = 0; i < count; i++)
        {
            key.VerifyData(data, signature, System.Security.Cryptography.HashAlgorithmName.SHA256);
        }
    }

    Verify(200);
    var clock = Stopwatch.StartNew();
    Verify(2000);
    return clock.Elapsed.TotalMicroseconds / 2000;
}

async Task RunLoadAsync(string? readConnectionString)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"calibration: one ES256 verification takes {Es256VerifyMicroseconds():F0} µs on one thread of this machine now"));
    var seconds = Positional(0, 20);
    var connections = Positional(1, 32);
    var seed = Positional(2, 1000);
    settings.Remove("Pit:Storage:ReadConnectionString");
    if (readConnectionString is not null)
    {
        settings["Pit:Storage:ReadConnectionString"] = readConnectionString;
    }

    var readsOn = standby is null ? "" : readConnectionString is null ? " reads-on=primary" : " reads-on=standby";
    await using var server = ceiling
        ? await CeilingHost.StartAsync(data, settings)
        : await ServerProcess.StartAsync(serverDll, data, settings);
    var clients = Enumerable.Range(0, connections).Select(_ => server.CreateClient()).ToArray();
    var identities = new SyntheticIdentitySequence();
    var tooMany = 0;

    if (mode == "get" && !ceiling)
    {
        // A second run of one sitting (--standby) finds the patients of the first already there.
        if (await CountAsync() < seed)
        {
            Console.WriteLine($"seeding {seed} patients...");
            await Parallel.ForEachAsync(Enumerable.Range(0, seed), new ParallelOptions { MaxDegreeOfParallelism = connections }, async (i, _) =>
            {
                using var response = await clients[i % connections].PostAsync("v1/Patient", Body(identities.Next()));
                response.EnsureSuccessStatusCode();
            });
        }

        while (await CountAsync() < seed)
        {
            await Task.Delay(200);
        }
    }

    // Patients the feed shows (through the server, so on the standby when reads go there).
    async Task<int> CountAsync()
    {
        var count = 0;
        string? next = "v1/Patient?_count=50";
        while (next is not null)
        {
            var page = System.Text.Json.Nodes.JsonNode.Parse(await clients[0].GetStringAsync(next))!;
            count += page["entry"]?.AsArray().Count ?? 0;
            next = (string?)page["link"]!.AsArray().FirstOrDefault(l => (string?)l!["relation"] == "next")?["url"];
        }

        return count;
    }

    // Warm-up (connection pools, and the JIT: on two busy cores tiered compilation takes tens of seconds to reach the
    // optimised code of the hot path), then the measured run.
    await RunAsync(warmup, record: false);
    Console.WriteLine($"warmed up for {warmup.TotalSeconds:F0} s; measuring {seconds} s");
    var usage = new ResourceUsage(server.ProcessId, cluster?.PostmasterProcessId, connectionString, standby?.PostmasterProcessId);
    await usage.StartAsync(diagnose ? seconds : null);
    var quiet = rateLimit is null ? null : QuietClientAsync(TimeSpan.FromSeconds(seconds));
    var (latencies, failures, elapsed) = await RunAsync(TimeSpan.FromSeconds(seconds), record: true);
    var usageReport = await usage.StopAsync(elapsed);
    if (quiet is not null)
    {
        var (sent, refused, quietP99) = await quiet;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"rate limit {rateLimit}/s (burst {2 * rateLimit}): flooding client {latencies.Count / elapsed.TotalSeconds:F0} ok/s and " +
            $"{failures / elapsed.TotalSeconds:F0} refused/s (429: {tooMany}); quiet client {sent} requests, {refused} refused, p99 {quietP99:F1} ms"));
    }

    latencies.Sort();
    double P(double q) => latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)(q * latencies.Count))];
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{mode} {engine}{readsOn} connections={connections} seconds={seconds}: {latencies.Count / elapsed.TotalSeconds:F0} req/s, " +
        $"p50 {P(0.50):F1} ms, p90 {P(0.90):F1} ms, p99 {P(0.99):F1} ms, max {P(1):F1} ms, non-success {failures}"));
    Console.WriteLine(usageReport);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"server CPU per answered request: {1000 * usage.ServerCpuSeconds / Math.Max(1, latencies.Count):F2} ms"));
    if (cluster is not null)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"PostgreSQL {(standby is null ? "" : "primary ")}CPU per answered request: {1000 * usage.PostgresCpuSeconds / Math.Max(1, latencies.Count):F3} ms"));
    }

    Console.WriteLine($"load average: {File.ReadAllText("/proc/loadavg").Trim()}");

    // Another organisation's client, well under the limit: a flood by the first must cost it nothing.
    async Task<(int Sent, int Refused, double P99)> QuietClientAsync(TimeSpan duration)
    {
        using var client = server.CreateClient("994598759");
        var times = new List<double>();
        var refused = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await client.GetAsync("v1/Patient?_count=20");
            await response.Content.CopyToAsync(Stream.Null);
            times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            refused += response.IsSuccessStatusCode ? 0 : 1;
            await Task.Delay(50);
        }

        times.Sort();
        return (times.Count, refused, times.Count == 0 ? 0 : times[Math.Min(times.Count - 1, (int)(0.99 * times.Count))]);
    }

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
                    if (response.StatusCode == HttpStatusCode.TooManyRequests && record)
                    {
                        Interlocked.Increment(ref tooMany);
                    }
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
}

/// <summary>
/// Distinct synthetic fødselsnummer (month + 80) with valid control digits, in a fixed sequence; <paramref name="skip"/>
/// starts further along it.
/// </summary>
internal sealed class SyntheticIdentitySequence(long skip = 0)
{
    private long _next = skip;

    public string Next()
    {
        while (true)
        {
            if (SyntheticIdentities.Candidate(Interlocked.Increment(ref _next)) is { } number)
            {
                return number;
            }
        }
    }
}
