using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Pit.TestSupport;

/// <summary>What <see cref="StalledReaders.RunAsync"/> saw.</summary>
/// <param name="Readers">Connections that asked for a page and never read it.</param>
/// <param name="PatientBytes">The JSON size of one stored Patient, as served.</param>
/// <param name="PageBytes">The size of the first <c>_count=50</c> page, read in full by a reader that does read.</param>
/// <param name="PageEntries">Entries on that page.</param>
/// <param name="BaselineRss">The server's resident memory after seeding and reading pages in full, before the readers.</param>
/// <param name="StalledRss">The server's resident memory with every reader stalled (highest of the samples taken).</param>
/// <param name="OtherOrganisationStatus">The status another organisation's search got while the readers were stalled.</param>
/// <param name="OtherOrganisationSeconds">How long that search took.</param>
public sealed record StalledReadersResult(
    int Readers, int PatientBytes, long PageBytes, int PageEntries, long BaselineRss, long StalledRss,
    HttpStatusCode OtherOrganisationStatus, double OtherOrganisationSeconds)
{
    /// <summary>Resident memory the stalled readers added, in total.</summary>
    public long Growth => Math.Max(0, StalledRss - BaselineRss);

    /// <summary>Resident memory the stalled readers added, per reader.</summary>
    public long GrowthPerReader => Growth / Readers;
}

/// <summary>
/// Clients that ask for a large search page and never read the answer, against a server process: the scenario of a
/// reader that stops reading (issue 15). Stores <c>patients</c> Patients padded to about <c>patientBytes</c> each,
/// reads pages in full once (so the baseline has seen such pages), then opens <c>readers</c> connections that each
/// request <c>GET /v1/Patient?_count=50</c>, take the response headers and read nothing more, and samples the
/// server's resident memory. Meanwhile another organisation searches. Shared by a test and the load harness.
/// </summary>
public static class StalledReaders
{
    /// <summary>The organisation whose search must still be answered while the readers are stalled.</summary>
    public const string OtherOrganisation = "123456785";

    /// <summary>Runs the scenario against <paramref name="server"/> (an empty store); <paramref name="log"/> gets progress lines.</summary>
    public static async Task<StalledReadersResult> RunAsync(ServerProcess server, int readers, int patients, int patientBytes, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        using var writer = server.CreateClient();
        await SeedAsync(writer, patients, patientBytes);
        log?.WriteLine($"stored {patients} Patients of about {patientBytes} bytes");

        // Reading pages in full first: the baseline then includes what any large search leaves (heap growth, pools).
        long pageBytes = 0;
        var pageEntries = 0;
        var patientSize = 0;
        for (var i = 0; i < 3; i++)
        {
            var text = await writer.GetStringAsync("v1/Patient?_count=50");
            var page = JsonNode.Parse(text)!;
            pageBytes = Encoding.UTF8.GetByteCount(text);
            var entries = page["entry"]!.AsArray();
            pageEntries = entries.Count;
            patientSize = Encoding.UTF8.GetByteCount(entries[0]!["resource"]!.ToJsonString());
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        var baseline = Rss(server.ProcessId);
        log?.WriteLine($"a _count=50 page: {pageEntries} entries, {pageBytes} bytes; server RSS before the readers {baseline / 1e6:F0} MB");

        // One handler per reader: each request has its own connection, and nothing reads past the headers.
        var stalled = new List<(HttpClient Client, HttpResponseMessage Response)>();
        try
        {
            var opened = Enumerable.Range(0, readers).Select(async _ =>
            {
                var client = server.CreateClient();
                var response = await client.GetAsync("v1/Patient?_count=50", HttpCompletionOption.ResponseHeadersRead);
                return (client, response);
            });
            stalled.AddRange(await Task.WhenAll(opened));

            // The server writes until each connection's buffers are full; sample until the memory stops growing.
            var peak = Rss(server.ProcessId);
            for (var i = 0; i < 40; i++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250));
                var now = Rss(server.ProcessId);
                if (i >= 8 && now <= peak)
                {
                    break;
                }

                peak = Math.Max(peak, now);
            }

            using var other = server.CreateClient(OtherOrganisation);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            using var answer = await other.GetAsync("v1/Patient?_count=50");
            await answer.Content.ReadAsStringAsync();
            var seconds = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
            peak = Math.Max(peak, Rss(server.ProcessId));
            log?.WriteLine($"{readers} stalled readers: server RSS {peak / 1e6:F0} MB (+{(peak - baseline) / 1e6:F0} MB, " +
                $"{(peak - baseline) / 1e6 / readers:F1} MB per reader); another organisation's search: {(int)answer.StatusCode} in {seconds:F2} s");
            return new StalledReadersResult(readers, patientSize, pageBytes, pageEntries, baseline, peak, answer.StatusCode, seconds);
        }
        finally
        {
            foreach (var (client, response) in stalled)
            {
                response.Dispose();
                client.Dispose();
            }
        }
    }

    /// <summary>A valid Patient of about <paramref name="bytes"/> bytes: an ordinary one whose name text is padded.</summary>
    public static string PaddedPatient(string fnr, int bytes) =>
        new JsonObject
        {
            ["resourceType"] = "Patient",
            ["identifier"] = new JsonArray(new JsonObject { ["system"] = "urn:oid:2.16.578.1.12.4.1.4.1", ["value"] = fnr }),
            ["name"] = new JsonArray(new JsonObject
            {
                ["text"] = "Kari " + new string('x', Math.Max(0, bytes - 200)),
                ["family"] = "Nordmann",
                ["given"] = new JsonArray("Kari"),
            }),
            ["gender"] = "female",
        }.ToJsonString();

    /// <summary>The resident memory (VmRSS) of process <paramref name="processId"/>, in bytes (Linux).</summary>
    public static long Rss(int processId)
    {
        foreach (var line in File.ReadLines($"/proc/{processId}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException("No VmRSS in /proc/<pid>/status.");
    }

    private static async Task SeedAsync(HttpClient client, int patients, int patientBytes)
    {
        var statusUrls = new List<Uri>();
        var n = Random.Shared.NextInt64(0, 1_000_000);
        while (statusUrls.Count < patients)
        {
            if (SyntheticIdentities.Candidate(n++) is not { } fnr)
            {
                continue;
            }

            using var body = new StringContent(PaddedPatient(fnr, patientBytes), Encoding.UTF8, "application/fhir+json");
            using var response = await client.PostAsync("v1/Patient", body);
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                throw new InvalidOperationException($"Seeding: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            statusUrls.Add(response.Content.Headers.ContentLocation!);
        }

        foreach (var url in statusUrls)
        {
            for (var attempt = 0; ; attempt++)
            {
                using var status = await client.GetAsync(url);
                if (status.StatusCode == HttpStatusCode.OK)
                {
                    break;
                }

                if (status.StatusCode != HttpStatusCode.Accepted || attempt > 600)
                {
                    throw new InvalidOperationException($"Seeding: submission {url} ended {(int)status.StatusCode}.");
                }

                await Task.Delay(100);
            }
        }
    }
}
