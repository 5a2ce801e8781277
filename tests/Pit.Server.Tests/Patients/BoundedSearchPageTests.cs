using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;
using Hl7.Fhir.Serialization;
using Microsoft.Extensions.Options;
using Pit.Server.Patients;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;
using Xunit.Abstractions;

namespace Pit.Server.Tests.Patients;

/// <summary>
/// Search pages are capped by bytes as well as by <c>_count</c> (<c>Pit:Search:MaxPageBytes</c>), streamed to the
/// client, and valid FHIR JSON when empty or carrying a warning (issue 15, findings 1, 5 and 6).
/// </summary>
public sealed class BoundedSearchPageTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly FhirJsonDeserializer Strict = new(new DeserializerSettings().UsingMode(DeserializationMode.Strict));

    [Theory]
    [InlineData("Sqlite")]
    [InlineData("Postgres")]
    public async Task A_page_over_the_byte_cap_ends_early_and_its_next_link_continues_without_gap_or_repeat(string engine)
    {
        const int Cap = 16 * 1024;
        var settings = new Dictionary<string, string?> { ["Pit:Search:MaxPageBytes"] = Cap.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (engine == "Postgres")
        {
            settings["Pit:Storage:Provider"] = "Postgres";
            settings["Pit:Storage:ConnectionString"] = await postgres.CreateDatabaseAsync();
        }

        await using var server = await TestServer.StartAsync(settings);
        using var client = server.CreateClient();
        // About 5 KB each, so three fit a page; one of 40 KB, larger than the cap; and a few small ones.
        int[] sizes = [5_000, 5_000, 5_000, 5_000, 40_000, 5_000, 500, 500, 5_000, 5_000, 5_000, 500];
        var stored = new List<JsonNode>();
        foreach (var size in sizes)
        {
            stored.Add(await client.SubmitAndReadAsync(StalledReaders.PaddedPatient(TestPatients.NewFnr(), size)));
        }

        var expected = stored.OrderBy(p => (string?)p["meta"]!["lastUpdated"], StringComparer.Ordinal).Select(p => (string)p["id"]!).ToList();
        var big = (string)stored[4]["id"]!;
        var pages = new List<List<string>>();
        string? next = "v1/Patient?_count=50";
        while (next is not null)
        {
            var bundle = await client.GetJsonAsync(next, HttpStatusCode.OK);
            var resources = bundle.Resources();
            Assert.NotEmpty(resources);
            var bytes = resources.Sum(r => Encoding.UTF8.GetByteCount(r.ToJsonString()));
            Assert.True(resources.Count == 1 || bytes <= Cap, $"a page of {resources.Count} Patients carries {bytes} bytes, over the cap of {Cap}");
            pages.Add([.. resources.Select(r => (string)r["id"]!)]);
            next = bundle.Link("next");
            Assert.True(pages.Count <= sizes.Length, "the next links never end");
        }

        Assert.Equal(expected, pages.SelectMany(p => p)); // every Patient once, in order: no gap, no repeat
        Assert.Contains(pages, p => p.SequenceEqual([big])); // larger than the cap: alone on its page
        Assert.True(pages.Count >= 4, $"{pages.Count} pages: the cap should have cut the 50 asked for into several");
    }

    [Fact]
    public async Task An_empty_searchset_has_no_entry_array_and_parses_as_strict_FHIR_JSON()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();

        using var response = await client.GetAsync("v1/Patient?_count=5");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/fhir+json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var bundle = JsonNode.Parse(text)!.AsObject();
        Assert.False(bundle.ContainsKey("entry"), text);
        AssertNoEmptyArraysOrObjects(bundle);
        var parsed = Strict.Deserialize<Bundle>(text);
        Assert.Equal(Bundle.BundleType.Searchset, parsed.Type);
        Assert.Empty(parsed.Entry);
    }

    [Fact]
    public async Task The_lenient_warning_entry_has_a_urn_uuid_full_url_and_the_bundle_parses_as_strict_FHIR_JSON()
    {
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();
        await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        foreach (var query in new[] { "v1/Patient?name=Olsen", "v1/Patient?name=Olsen&_lastUpdated=lt2000-01-01T00:00Z" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, query);
            request.Headers.Add("Prefer", "handling=lenient");
            using var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);

            AssertNoEmptyArraysOrObjects(JsonNode.Parse(text)!);
            var bundle = Strict.Deserialize<Bundle>(text);
            Assert.All(bundle.Entry, e => Assert.False(string.IsNullOrEmpty(e.FullUrl)));
            var outcome = Assert.Single(bundle.Entry, e => e.Search?.Mode == Bundle.SearchEntryMode.Outcome);
            Assert.StartsWith("urn:uuid:", outcome.FullUrl, StringComparison.Ordinal);
            Assert.True(Guid.TryParse(outcome.FullUrl!["urn:uuid:".Length..], out _), outcome.FullUrl);
            Assert.IsType<OperationOutcome>(outcome.Resource);
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1023")]
    [InlineData("1073741825")]
    public async Task A_page_byte_cap_outside_its_range_stops_the_start(string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Search:MaxPageBytes"] = value }));
        Assert.Contains("Pit:Search:MaxPageBytes", error.Message, StringComparison.Ordinal);
    }

    private static void AssertNoEmptyArraysOrObjects(JsonNode node)
    {
        switch (node)
        {
            case JsonArray array:
                Assert.NotEmpty(array);
                foreach (var item in array)
                {
                    AssertNoEmptyArraysOrObjects(item!);
                }

                break;
            case JsonObject obj:
                Assert.NotEmpty(obj);
                foreach (var (_, value) in obj)
                {
                    AssertNoEmptyArraysOrObjects(value!);
                }

                break;
        }
    }
}

/// <summary>
/// Clients that ask for a large page and never read it hold a bounded amount of the server's memory, and other
/// organisations are still answered (issue 15, finding 1). Runs the server as its own process, so its resident memory
/// is its own.
/// </summary>
public sealed class StalledReaderMemoryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Readers_that_never_read_a_large_page_hold_bounded_server_memory_and_other_organisations_are_still_answered()
    {
        const int Readers = 8;
        const int PatientBytes = 880_000;
        var data = Directory.CreateTempSubdirectory("pit-stalled-").FullName;
        try
        {
            await using var server = await ServerProcess.StartAsync(KillUnderLoad.ServerDll, data, new Dictionary<string, string?>
            {
                ["Pit:RateLimiting:Enabled"] = "false",
            });
            var log = new StringWriter();
            var result = await StalledReaders.RunAsync(server, Readers, patients: 24, PatientBytes, log);
            output.WriteLine(log.ToString());

            // The page is cut by the default cap (4 MiB): four Patients, not all 24 (about 21 MB, as before the cap).
            Assert.InRange(result.PageBytes, PatientBytes, SearchOptions.DefaultMaxPageBytes + 64 * 1024);
            Assert.Equal(HttpStatusCode.OK, result.OtherOrganisationStatus);

            // The bound: per reader at most the page's rows (the cap), one entry waiting for Kestrel and Kestrel's
            // response buffer, about 5 MB. Allow twice that, for the GC's slack: 80 MB for 8 readers. Before streaming
            // and the cap each reader held the whole page (about 21 MB) and more while it was built: 170 MB or more.
            var bound = Readers * 2 * (SearchOptions.DefaultMaxPageBytes + PatientBytes + 64 * 1024);
            Assert.True(result.Growth < bound,
                $"{Readers} stalled readers grew the server's memory by {result.Growth / 1e6:F0} MB, over the bound of {bound / 1e6:F0} MB");
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
