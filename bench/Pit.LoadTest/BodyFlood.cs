using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pit.TestSupport;

namespace Pit.LoadTest;

/// <summary>
/// <c>bodies</c>: many large POSTs at once against the real server process, to see what the request path holds
/// before the queue. Every request starts at the same moment, each on its own connection, with a valid Patient
/// padded with a long address text to <c>--bytes</c>. A 503 is retried after its Retry-After (counted); afterwards
/// every 202's status URL is polled until it says processed. Prints the server's resident memory before the flood and
/// its peak (VmHWM); exit code 1 when the peak passes <c>--max-rss-mb</c>, a request got anything but 202 or
/// 503 + Retry-After + OperationOutcome, or an accepted submission was not applied.
/// </summary>
/// <remarks>
/// <c>bodies [--requests 512] [--bytes 880000] [--max-rss-mb 600] [--postgres-start | --postgres "..."]
/// [--set Pit:Section:Key=value ...] [--env DOTNET_GCHeapHardLimit=0x... ...]</c> (<c>--env</c> for the server process only). Loopback only; bounded in count (at most 4 096 requests, 20 attempts each)
/// and time (HTTP timeout 100 s per attempt, 3 minutes to see every submission applied).
/// </remarks>
public static class BodyFlood
{
    private const int MaxAttempts = 20;
    private static readonly TimeSpan ApplyDeadline = TimeSpan.FromMinutes(3);

    /// <summary>Runs a flood as <paramref name="args"/> (after the word <c>bodies</c>) say; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output)
    {
        string? Option(string name) => Array.IndexOf(args, name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
        var requests = Math.Clamp(int.Parse(Option("--requests") ?? "512", CultureInfo.InvariantCulture), 1, 4096);
        var bytes = Math.Clamp(int.Parse(Option("--bytes") ?? "880000", CultureInfo.InvariantCulture), 1024, 921_600);
        var maxRssMb = int.Parse(Option("--max-rss-mb") ?? "600", CultureInfo.InvariantCulture);

        await using var cluster = args.Contains("--postgres-start") ? new PostgresCluster { SharedBuffers = "128MB" } : null;
        var connectionString = Option("--postgres");
        if (cluster is not null)
        {
            await cluster.InitializeAsync();
            connectionString = await cluster.CreateDatabaseAsync();
        }

        var settings = new Dictionary<string, string?> { ["Pit:RateLimiting:Enabled"] = "false" };
        HarnessSettings.UseEnvironment(settings);
        if (connectionString is not null)
        {
            settings["Pit:Storage:Provider"] = "Postgres";
            settings["Pit:Storage:ConnectionString"] = connectionString;
        }

        var environment = new Dictionary<string, string>();
        for (var i = 0; i < args.Length - 1; i++)
        {
            if (args[i] == "--set" && args[i + 1].Split('=', 2) is [var key, var value])
            {
                settings[key] = value;
            }
            else if (args[i] == "--env" && args[i + 1].Split('=', 2) is [var name, var text])
            {
                environment[name] = text;
            }
        }

        var engine = connectionString is null ? "sqlite" : "postgres";
        var data = Directory.CreateTempSubdirectory("pit-bodies-").FullName;
        try
        {
            await using var server = await ServerProcess.StartAsync(typeof(Pit.Server.PitApp).Assembly.Location, data, settings, environment: environment);
            var flood = new Flood(server, requests, bytes);
            var before = Memory(server.ProcessId, "VmRSS:");
            var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
            var clock = Stopwatch.StartNew();
            await flood.SendAsync();
            var sent = clock.Elapsed;
            // A dead process (a zombie until reaped) has no memory lines in its status file.
            if (server.HasExited || !File.ReadAllText($"/proc/{server.ProcessId}/status").Contains("VmHWM:", StringComparison.Ordinal))
            {
                await Task.Delay(1000);
                output.WriteLine($"the server process died during the flood; its last output:\n{string.Join('\n', server.LastOutput)}");
                return 1;
            }

            var peak = Memory(server.ProcessId, "VmHWM:");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"sent in {sent.TotalSeconds:F1} s; server RSS peak so far {Mb(peak)} MB; waiting for every 202 to be applied"));
            var applied = await flood.AppliedAsync();
            peak = Memory(server.ProcessId, "VmHWM:");
            var passed = peak <= maxRssMb * 1024L * 1024 && flood.Unexpected.IsEmpty && flood.Accepted.Count == requests && applied == requests;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bodies {engine}: {requests} concurrent POSTs of {bytes} bytes in {sent.TotalSeconds:F1} s: {flood.Accepted.Count} accepted (202), " +
                $"{flood.Refused} answered 503 + Retry-After and retried, {flood.Unexpected.Count} unexpected; {applied} of {flood.Accepted.Count} applied " +
                $"{clock.Elapsed.TotalSeconds:F1} s after the start"));
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"server RSS before {Mb(before)} MB, peak {Mb(peak)} MB (bound {maxRssMb} MB): {(passed ? "PASS" : "FAIL")}"));
            output.WriteLine($"load average before: {loadBefore}; after: {File.ReadAllText("/proc/loadavg").Trim()}");
            // Grouped by the kind of answer (status and the start of its text, without the submission's URL).
            foreach (var group in flood.Unexpected.Select(u => Regex.Replace(u, "https?://\\S+", "<url>")).GroupBy(u => u[..Math.Min(u.Length, 160)]).OrderByDescending(g => g.Count()).Take(5))
            {
                output.WriteLine($"unexpected ({group.Count()}×): {group.Key}");
            }

            return passed ? 0 : 1;
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static long Mb(long value) => value / (1024 * 1024);

    // A line of /proc/<pid>/status in bytes: VmRSS now, VmHWM the peak since the process started.
    private static long Memory(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private sealed class Flood(ServerProcess server, int requests, int bytes)
    {
        private readonly SyntheticIdentitySequence _identities = new(Random.Shared.NextInt64(1, 1_000_000_000));
        private int _refused;

        public ConcurrentBag<Uri> Accepted { get; } = [];

        public ConcurrentBag<string> Unexpected { get; } = [];

        public int Refused => _refused;

        public async Task SendAsync()
        {
            // One client (access token, DPoP key, connection pool) per 32 requests; each request gets its own connection.
            var clients = Enumerable.Range(0, (requests + 31) / 32).Select(_ => server.CreateClient()).ToArray();
            using var start = new ManualResetEventSlim();
            var all = Enumerable.Range(0, requests).Select(i => Task.Run(async () =>
            {
                start.Wait();
                await PostAsync(clients[i / 32], _identities.Next());
            })).ToArray();
            start.Set();
            await Task.WhenAll(all);
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }

        private async Task PostAsync(HttpClient client, string fnr)
        {
            for (var attempt = 1; attempt <= MaxAttempts; attempt++)
            {
                HttpResponseMessage response;
                string body;
                try
                {
                    response = await client.PostAsync("v1/Patient", new PaddedPatient(fnr, bytes));
                    body = await response.Content.ReadAsStringAsync();
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    Unexpected.Add($"no answer: {ex.GetType().Name} {ex.Message}");
                    return;
                }

                using var answer = response;
                if (response.StatusCode == HttpStatusCode.Accepted && response.Content.Headers.ContentLocation is { } status)
                {
                    Accepted.Add(status);
                    return;
                }

                string? outcome;
                try
                {
                    outcome = (string?)JsonNode.Parse(body)?["resourceType"];
                }
                catch (JsonException)
                {
                    // An answer that is not JSON at all (an empty 500, say) is unexpected, not a harness crash.
                    outcome = null;
                }

                if (response.StatusCode != HttpStatusCode.ServiceUnavailable || response.Headers.RetryAfter?.Delta is not { } retryAfter || outcome != "OperationOutcome")
                {
                    Unexpected.Add($"{(int)response.StatusCode} {body[..Math.Min(body.Length, 300)]}");
                    return;
                }

                Interlocked.Increment(ref _refused);
                await Task.Delay(retryAfter);
            }

            Unexpected.Add($"still refused after {MaxAttempts} attempts");
        }

        /// <summary>Polls every accepted submission's status URL until it is processed; returns how many were applied.</summary>
        public async Task<int> AppliedAsync()
        {
            using var client = server.CreateClient();
            var deadline = Stopwatch.StartNew();
            var applied = 0;
            await Parallel.ForEachAsync(Accepted, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (status, _) =>
            {
                while (deadline.Elapsed < ApplyDeadline)
                {
                    using var response = await client.GetAsync(status);
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref applied);
                        return;
                    }

                    if (response.StatusCode != HttpStatusCode.Accepted)
                    {
                        var text = await response.Content.ReadAsStringAsync();
                        Unexpected.Add($"status {status}: {(int)response.StatusCode} {text[..Math.Min(text.Length, 300)]}");
                        return;
                    }

                    await Task.Delay(200);
                }
            });
            return applied;
        }
    }

    /// <summary>
    /// A valid Patient of exactly <c>bytes</c> bytes (a long address text makes up the size), written in chunks so
    /// that hundreds of them in flight cost the load generator little memory.
    /// </summary>
    private sealed class PaddedPatient : HttpContent
    {
        private static readonly byte[] Padding = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("Storgata 1, 0155 Oslo. ", 700)));
        private readonly byte[] _prefix;
        private readonly byte[] _suffix = Encoding.ASCII.GetBytes("\"}]}");
        private readonly int _padding;

        public PaddedPatient(string fnr, int bytes)
        {
            _prefix = Encoding.ASCII.GetBytes(
                $$"""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{{fnr}}"}],"name":[{"family":"Nordmann","given":["Kari"]}],"gender":"female","address":[{"text":""" + "\"");
            _padding = Math.Max(1, bytes - _prefix.Length - _suffix.Length);
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(_prefix);
            for (var left = _padding; left > 0; left -= Padding.Length)
            {
                await stream.WriteAsync(Padding.AsMemory(0, Math.Min(left, Padding.Length)));
            }

            await stream.WriteAsync(_suffix);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _prefix.Length + _padding + _suffix.Length;
            return true;
        }
    }
}
