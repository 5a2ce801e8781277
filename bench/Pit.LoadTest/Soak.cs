using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.LoadTest;

/// <summary>
/// <c>soak</c>: minutes of mixed traffic against the real server process, as a national service sees it: 80 % GET
/// following the change feed, 20 % POST, from many distinct clients (each its own access token and DPoP key, a fresh
/// proof per request). Every interval it prints throughput, latency, non-2xx by status, server RSS, how many accepted
/// submissions are not yet visible in the feed, and the visibility lag (from a 202 to the first feed poll that shows
/// that Patient). Exit code 1 when a valid request was refused, an accepted one never became visible, or RSS grew by
/// more than 20 % after the first minute; <c>--no-thresholds</c> only reports.
/// </summary>
/// <remarks>
/// <c>soak [--minutes 10 | --seconds N] [--clients 64] [--connections 32] [--interval 10] [--postgres-start |
/// --postgres "..."] [--no-thresholds]</c>. Loopback only; bounded in time (at most a day), clients and connections.
/// </remarks>
public static class Soak
{
    private const string Organisation = "974762501";
    private const double PostShare = 0.2;
    private const int MaxTracked = 200_000;
    private static readonly TimeSpan TokenRenewal = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan VisibilityGrace = TimeSpan.FromSeconds(15);

    /// <summary>Runs a soak as <paramref name="args"/> (after the word <c>soak</c>) say; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        var options = SoakOptions.Parse(args);
        await using var cluster = options.PostgresStart ? new PostgresCluster { SharedBuffers = "128MB" } : null;
        var connectionString = options.Postgres;
        if (cluster is not null)
        {
            await cluster.InitializeAsync();
            connectionString = await cluster.CreateDatabaseAsync();
        }

        // The harness sets the server's own per-client limits out of its way: it measures the server, not its throttle.
        var settings = new Dictionary<string, string?>
        {
            ["Pit:RateLimiting:Enabled"] = "false",
            ["Pit:RateLimiting:PermitsPerSecond"] = "1000000",
            ["Pit:RateLimiting:Burst"] = "1000000",
        };
        HarnessSettings.UseEnvironment(settings);
        if (connectionString is not null)
        {
            settings["Pit:Storage:Provider"] = "Postgres";
            settings["Pit:Storage:ConnectionString"] = connectionString;
        }

        var engine = connectionString is null ? "sqlite" : "postgres";
        var data = Directory.CreateTempSubdirectory("pit-soak-").FullName;
        try
        {
            await using var server = await ServerProcess.StartAsync(typeof(Pit.Server.PitApp).Assembly.Location, data, settings);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak {engine}: {options.Duration.TotalSeconds:F0} s, {options.Clients} clients, {options.Connections} connections, report every {options.Interval.TotalSeconds:F0} s"));
            var usage = new ResourceUsage(server.ProcessId, cluster?.PostmasterProcessId, connectionString);
            await usage.StartAsync(null);
            var run = new SoakRun(server, options, output);
            var passed = await run.RunAsync(engine);
            output.WriteLine(await usage.StopAsync(options.Duration));
            return passed || !options.Thresholds ? 0 : 1;
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>One soak against a running server.</summary>
    private sealed class SoakRun(ServerProcess server, SoakOptions options, TextWriter output)
    {
        private readonly SyntheticIdentitySequence _identities = new(Random.Shared.NextInt64(1, 1_000_000_000));
        private readonly ConcurrentDictionary<string, long> _unseen = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<int, long> _refusedTotal = new();
        private readonly LatencyHistogram _latencyTotal = new();
        private readonly LatencyHistogram _visibilityTotal = new();
        private Window _window = new();
        private long _untracked;

        public async Task<bool> RunAsync(string engine)
        {
            var clients = Enumerable.Range(0, options.Clients).Select(i => new FeedClient(server, $"pit-soak-{i:D3}")).ToList();
            var idle = Channel.CreateUnbounded<FeedClient>();
            foreach (var client in clients)
            {
                idle.Writer.TryWrite(client);
            }

            var clock = Stopwatch.StartNew();
            using var stop = new CancellationTokenSource(options.Duration);
            var workers = Enumerable.Range(0, options.Connections).Select(_ => Task.Run(() => WorkAsync(idle, stop.Token))).ToList();
            long? baselineRss = null;
            var lastRss = 0L;
            var maxRss = 0L;
            var next = options.Interval;
            while (!stop.IsCancellationRequested)
            {
                var wait = next - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
                }

                var elapsed = clock.Elapsed;
                lastRss = Rss(server.ProcessId);
                maxRss = Math.Max(maxRss, lastRss);
                if (baselineRss is null && elapsed >= TimeSpan.FromMinutes(1))
                {
                    baselineRss = lastRss;
                }

                Report(elapsed, elapsed - (next - options.Interval), lastRss);
                next += options.Interval;
            }

            await Task.WhenAll(workers);
            var loadTime = clock.Elapsed;
            var neverVisible = await DrainAsync(clients);
            foreach (var client in clients)
            {
                client.Dispose();
            }

            var refused = _refusedTotal.Values.Sum();
            var growth = baselineRss is { } b && b > 0 ? (double)(lastRss - b) / b : (double?)null;
            var passed = refused == 0 && neverVisible == 0 && (growth is null || growth <= 0.20);
            var rss = baselineRss is { } r
                ? string.Create(CultureInfo.InvariantCulture, $"{Mb(r)} MB at 1 min -> {Mb(lastRss)} MB ({growth:+0.0%;-0.0%})")
                : $"{Mb(lastRss)} MB (run < 1 min, growth n/a)";
            var verdict = passed ? "PASS" : "FAIL";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"soak summary: {engine} {loadTime.TotalSeconds:F0} s, {options.Clients} clients, {options.Connections} connections: " +
                $"{_latencyTotal.Count} requests ({_latencyTotal.Count / loadTime.TotalSeconds:F0} req/s), " +
                $"p50 {_latencyTotal.Percentile(0.50):F1} ms, p99 {_latencyTotal.Percentile(0.99):F1} ms, " +
                $"refused {refused} ({ByStatus(_refusedTotal)}), not visible after {VisibilityGrace.TotalSeconds:F0} s {neverVisible}, untracked {_untracked}, " +
                $"visibility p50 {_visibilityTotal.Percentile(0.50):F0} ms p99 {_visibilityTotal.Percentile(0.99):F0} ms, " +
                $"server RSS {rss}, max {Mb(maxRss)} MB: {verdict}"));
            return passed;
        }

        // Each worker is one connection's worth of concurrency; it takes whichever client is idle, so a client's
        // feed position is only ever used by one request at a time.
        private async Task WorkAsync(Channel<FeedClient> idle, CancellationToken stop)
        {
            while (!stop.IsCancellationRequested)
            {
                FeedClient client;
                try
                {
                    client = await idle.Reader.ReadAsync(stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                try
                {
                    await (Random.Shared.NextDouble() < PostShare ? PostAsync(client) : PollAsync(client));
                }
                finally
                {
                    idle.Writer.TryWrite(client);
                }
            }
        }

        private async Task PostAsync(FeedClient client)
        {
            var fnr = _identities.Next();
            var tracked = _unseen.Count < MaxTracked && _unseen.TryAdd(fnr, -1);
            if (!tracked)
            {
                Interlocked.Increment(ref _untracked);
            }

            var started = Stopwatch.GetTimestamp();
            var status = await SendAsync(client, () => client.Http.PostAsync("v1/Patient", Body(fnr)), null);
            if (status == (int)HttpStatusCode.Accepted)
            {
                // A feed poll may already have shown it (then it counted as seen at once).
                _unseen.TryUpdate(fnr, Stopwatch.GetTimestamp(), -1);
            }
            else if (tracked)
            {
                _unseen.TryRemove(fnr, out _);
            }

            Record(started, status, post: true);
        }

        private async Task PollAsync(FeedClient client)
        {
            var started = Stopwatch.GetTimestamp();
            var status = await SendAsync(client, () => client.Http.GetAsync(client.NextUrl()), json => Seen(client, json));
            Record(started, status, post: false);
        }

        // Sends one request; returns its status (0 for a transport failure) after handing a 200 body to `read`.
        private static async Task<int> SendAsync(FeedClient client, Func<Task<HttpResponseMessage>> send, Action<JsonDocument>? read)
        {
            try
            {
                using var response = await send();
                if (response.StatusCode == HttpStatusCode.OK && read is not null)
                {
                    using var json = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync());
                    read(json);
                }
                else
                {
                    await response.Content.CopyToAsync(Stream.Null);
                }

                return (int)response.StatusCode;
            }
            catch (HttpRequestException)
            {
                client.ResetFeed();
                return 0;
            }
        }

        private void Seen(FeedClient client, JsonDocument page)
        {
            var now = Stopwatch.GetTimestamp();
            string? last = null;
            if (page.RootElement.TryGetProperty("entry", out var entries))
            {
                foreach (var entry in entries.EnumerateArray())
                {
                    var resource = entry.GetProperty("resource");
                    if (resource.GetProperty("resourceType").GetString() != "Patient")
                    {
                        continue;
                    }

                    last = resource.GetProperty("meta").GetProperty("lastUpdated").GetString();
                    var fnr = resource.GetProperty("identifier")[0].GetProperty("value").GetString()!;
                    if (_unseen.TryRemove(fnr, out var acceptedAt))
                    {
                        var lag = acceptedAt < 0 ? 0 : Stopwatch.GetElapsedTime(acceptedAt, now).TotalMilliseconds;
                        _window.Visibility.Record(lag);
                        _visibilityTotal.Record(lag);
                    }
                }
            }

            string? next = null;
            foreach (var link in page.RootElement.GetProperty("link").EnumerateArray())
            {
                if (link.GetProperty("relation").GetString() == "next")
                {
                    next = link.GetProperty("url").GetString();
                }
            }

            client.Advance(last, next);
        }

        private void Record(long started, int status, bool post)
        {
            var window = _window;
            if (status is >= 200 and < 300)
            {
                var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                window.Latency.Record(ms);
                _latencyTotal.Record(ms);
                if (post)
                {
                    Interlocked.Increment(ref window.Posts);
                }
                else
                {
                    Interlocked.Increment(ref window.Gets);
                }
            }
            else
            {
                window.Refused.AddOrUpdate(status, 1, (_, n) => n + 1);
                _refusedTotal.AddOrUpdate(status, 1, (_, n) => n + 1);
            }
        }

        private void Report(TimeSpan elapsed, TimeSpan length, long rss)
        {
            var window = Interlocked.Exchange(ref _window, new Window());
            var seconds = Math.Max(length.TotalSeconds, 0.001);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{elapsed.TotalSeconds,5:F0} s] {window.Latency.Count / seconds,6:F0} req/s (GET {window.Gets}, POST {window.Posts}), " +
                $"p50 {window.Latency.Percentile(0.50):F1} ms, p99 {window.Latency.Percentile(0.99):F1} ms | non-2xx {ByStatus(window.Refused)} | " +
                $"server RSS {Mb(rss)} MB | accepted, not yet in feed {_unseen.Count} | " +
                $"visibility p50 {window.Visibility.Percentile(0.50):F0} ms, p99 {window.Visibility.Percentile(0.99):F0} ms"));
        }

        // After the load: keep polling (one client at a time) until every accepted submission was seen or the grace ends.
        private async Task<int> DrainAsync(List<FeedClient> clients)
        {
            var deadline = Stopwatch.StartNew();
            var turn = 0;
            while (!_unseen.IsEmpty && deadline.Elapsed < VisibilityGrace)
            {
                await PollAsync(clients[turn++ % clients.Count]);
                if (turn % clients.Count == 0)
                {
                    await Task.Delay(50);
                }
            }

            return _unseen.Count;
        }
    }

    private sealed class Window
    {
        public readonly LatencyHistogram Latency = new();
        public readonly LatencyHistogram Visibility = new();
        public readonly ConcurrentDictionary<int, long> Refused = new();
        public long Gets;
        public long Posts;
    }

    private static string ByStatus(ConcurrentDictionary<int, long> refused) =>
        refused.IsEmpty ? "none" : string.Join(", ", refused.OrderBy(r => r.Key).Select(r => $"{(r.Key == 0 ? "transport error" : r.Key.ToString(CultureInfo.InvariantCulture))}: {r.Value}"));

    private static long Mb(long bytes) => bytes / (1024 * 1024);

    private static long Rss(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static StringContent Body(string fnr) => new(
        $$"""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{{fnr}}"}],"name":[{"family":"Nordmann","given":["Kari","Synnøve"]}],"gender":"female","birthDate":"1972-09-13","address":[{"line":["Storgata 1"],"postalCode":"0155","city":"Oslo"}]}""",
        Encoding.UTF8, "application/fhir+json");

    /// <summary>
    /// One distinct client: its own DPoP key, its own access token (renewed before it expires, as a real client
    /// renews), its own connections, and its own position in the change feed.
    /// </summary>
    private sealed class FeedClient : IDisposable
    {
        private static readonly string Start = Uri.EscapeDataString(FeedTime.Format(FeedTime.FromDateTimeOffset(DateTimeOffset.UtcNow)));
        private readonly DpopKey _key = DpopKey.CreateEcP256();
        private string? _last;
        private string? _next;

        public FeedClient(ServerProcess server, string clientId)
        {
            var token = server.MintAccessToken(_key, Organisation, clientId);
            var minted = Stopwatch.StartNew();
            var handler = new DpopHttpHandler(_key, _ =>
            {
                if (minted.Elapsed > TokenRenewal)
                {
                    token = server.MintAccessToken(_key, Organisation, clientId);
                    minted.Restart();
                }

                return ValueTask.FromResult(token);
            })
            { InnerHandler = new SocketsHttpHandler() };
            Http = new HttpClient(handler) { BaseAddress = server.BaseAddress };
        }

        public HttpClient Http { get; }

        /// <summary>The next page of this client's feed: the next link, else everything after the last change it saw.</summary>
        public string NextUrl() => _next ?? $"v1/Patient?_count=50&_lastUpdated=gt{(_last is null ? Start : Uri.EscapeDataString(_last))}";

        public void Advance(string? last, string? next)
        {
            _last = last ?? _last;
            _next = next;
        }

        public void ResetFeed() => _next = null;

        public void Dispose()
        {
            Http.Dispose();
            _key.Dispose();
        }
    }
}
