using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class SearchTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient _client = null!;
    private List<JsonNode> _patients = [];

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        _client = _server.CreateClient();
        var statusUrls = new List<Uri>();
        for (var i = 0; i < 7; i++)
        {
            statusUrls.Add(await _client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr(), family: $"Family{i}")));
        }

        foreach (var url in statusUrls)
        {
            var (_, _, location) = await _client.WaitProcessedAsync(url);
            _patients.Add(await _client.GetJsonAsync(location!.ToString(), HttpStatusCode.OK));
        }

        _patients = [.. _patients.OrderBy(p => (string?)p["meta"]!["lastUpdated"], StringComparer.Ordinal)];
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task A_search_returns_a_searchset_bundle_oldest_first_with_full_urls()
    {
        var bundle = await _client.GetJsonAsync("v1/Patient", HttpStatusCode.OK);

        Assert.Equal("Bundle", (string?)bundle["resourceType"]);
        Assert.Equal("searchset", (string?)bundle["type"]);
        Assert.Equal(Ids(_patients), Ids(bundle.Resources()));
        var entry = bundle["entry"]![0]!;
        Assert.Equal($"{_server.BaseAddress}v1/Patient/{entry["resource"]!["id"]}", (string?)entry["fullUrl"]);
        Assert.Equal("match", (string?)entry["search"]!["mode"]);
        Assert.Equal($"{_server.BaseAddress}v1/Patient?_count=20&_sort=_lastUpdated", bundle.Link("self"));
        Assert.Null(bundle.Link("next"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    public async Task Following_next_links_visits_every_patient_once_in_order(int count)
    {
        var seen = await FollowAsync($"v1/Patient?_count={count}");
        Assert.Equal(Ids(_patients), seen);
    }

    [Fact]
    public async Task Descending_sort_pages_newest_first()
    {
        var seen = await FollowAsync("v1/Patient?_count=2&_sort=-_lastUpdated");
        Assert.Equal(Ids(_patients).AsEnumerable().Reverse(), seen);
    }

    [Fact]
    public async Task With_a_cursor_sort_is_ignored_and_count_overrides_the_page_size()
    {
        var first = await _client.GetJsonAsync("v1/Patient?_count=2", HttpStatusCode.OK);
        var next = first.Link("next")!;

        var ignoringSort = await _client.GetJsonAsync(next + "&_sort=-_lastUpdated", HttpStatusCode.OK);
        Assert.Equal(Ids(_patients.Skip(2).Take(2)), Ids(ignoringSort.Resources()));

        var bigger = await _client.GetJsonAsync(next + "&_count=4", HttpStatusCode.OK);
        Assert.Equal(Ids(_patients.Skip(2).Take(4)), Ids(bigger.Resources()));
        Assert.EndsWith("&_count=4", bigger.Link("self"));
    }

    [Fact]
    public async Task LastUpdated_bounds_follow_fhir_range_semantics_at_full_precision()
    {
        var third = (string)_patients[2]["meta"]!["lastUpdated"]!;
        var fifth = (string)_patients[4]["meta"]!["lastUpdated"]!;

        Assert.Equal(Ids(_patients.Skip(3)), Ids(await SearchAsync($"_lastUpdated=gt{third}")));
        Assert.Equal(Ids(_patients.Skip(2)), Ids(await SearchAsync($"_lastUpdated=ge{third}")));
        Assert.Equal(Ids(_patients.Take(2)), Ids(await SearchAsync($"_lastUpdated=lt{third}")));
        Assert.Equal(Ids(_patients.Take(3)), Ids(await SearchAsync($"_lastUpdated=le{third}")));
        Assert.Equal(Ids(_patients.Skip(2).Take(2)), Ids(await SearchAsync($"_lastUpdated=ge{third}&_lastUpdated=lt{fifth}")));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(0)]
    public async Task A_gt_copy_of_a_stamp_with_fewer_digits_repeats_that_version_rather_than_skipping_what_follows(int digits)
    {
        var third = (string)_patients[2]["meta"]!["lastUpdated"]!;
        var thirdId = (string)_patients[2]["id"]!;
        var dot = third.IndexOf('.', StringComparison.Ordinal);
        var copy = (digits == 0 ? third[..dot] : third[..(dot + 1 + digits)]) + "Z";

        var ids = Ids(await SearchAsync($"_lastUpdated=gt{copy}"));

        // After "copy minus one unit": the third itself comes again (it lies inside that unit), and everything after it.
        Assert.Contains(thirdId, ids);
        Assert.Equal(Ids(_patients.Skip(3)), ids.SkipWhile(id => id != thirdId).Skip(1));
    }

    [Fact]
    public async Task Minute_precision_covers_the_whole_minute()
    {
        var first = DateTimeOffset.Parse((string)_patients[0]["meta"]!["lastUpdated"]!, CultureInfo.InvariantCulture);
        var minute = first.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture) + "Z";
        var next = first.UtcDateTime.AddMinutes(1).ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture) + "Z";

        // gt a minute excludes everything inside that minute; le includes it all.
        var gt = Ids(await SearchAsync($"_lastUpdated=gt{minute}"));
        Assert.DoesNotContain((string)_patients[0]["id"]!, gt);
        Assert.Equal(Ids(await SearchAsync($"_lastUpdated=ge{next}")), gt);
        Assert.Contains((string)_patients[0]["id"]!, Ids(await SearchAsync($"_lastUpdated=le{minute}")));
    }

    [Fact]
    public async Task Time_zones_are_honoured_and_a_decoded_plus_is_read_as_plus()
    {
        var first = DateTimeOffset.Parse((string)_patients[0]["meta"]!["lastUpdated"]!, CultureInfo.InvariantCulture);
        var local = first.ToOffset(TimeSpan.FromHours(1)).AddMinutes(-1).ToString("yyyy-MM-dd'T'HH:mm", CultureInfo.InvariantCulture);
        Assert.Equal(Ids(_patients), Ids(await SearchAsync($"_lastUpdated=ge{local}%2B01:00")));
        Assert.Equal(Ids(_patients), Ids(await SearchAsync($"_lastUpdated=ge{local}+01:00")));
    }

    [Theory]
    [InlineData("gt2999-01-01T00:00Z", 0)]
    [InlineData("gt9999-12-31T23:59:59.999999999+14:00", 0)]
    [InlineData("lt2999-01-01T00:00Z", 7)]
    [InlineData("gt0001-01-01T00:00Z", 7)]
    [InlineData("lt1000-01-01T00:00Z", 0)]
    public async Task Far_past_and_future_bounds_are_exact(string bound, int expected) =>
        Assert.Equal(expected, (await SearchAsync($"_lastUpdated={Uri.EscapeDataString(bound)}")).Count);

    [Fact]
    public async Task The_self_link_names_the_parameters_used()
    {
        var bundle = await _client.GetJsonAsync("v1/Patient?_lastUpdated=ge2020-01-01T00:00Z&_sort=-_lastUpdated", HttpStatusCode.OK);
        Assert.Equal($"{_server.BaseAddress}v1/Patient?_lastUpdated=ge2020-01-01T00%3A00Z&_count=20&_sort=-_lastUpdated", bundle.Link("self"));
    }

    [Theory]
    [InlineData("_lastUpdated=2024-01-01T12:00Z", "no prefix")]
    [InlineData("_lastUpdated=eq2024-01-01T12:00Z", "unsupported prefix")]
    [InlineData("_lastUpdated=sa2024-01-01T12:00Z", "unsupported prefix")]
    [InlineData("_lastUpdated=ge2024-01-01", "minute precision")]
    [InlineData("_lastUpdated=ge2024-01-01T12Z", "minute precision")]
    [InlineData("_lastUpdated=ge2024-01-01T12:00", "minute precision")]
    [InlineData("_lastUpdated=ge2024-02-30T12:00Z", "not a valid date")]
    [InlineData("_lastUpdated=geyesterday", "minute precision")]
    [InlineData("_lastUpdated=ge2024-01-01T12:00Z,lt2025-01-01T12:00Z", "comma")]
    [InlineData("_lastUpdated=ge2024-01-01T12:00Z&_lastUpdated=lt2025-01-01T12:00Z&_lastUpdated=lt2026-01-01T12:00Z", "at most twice")]
    [InlineData("_count=0", "1 to 50")]
    [InlineData("_count=51", "1 to 50")]
    [InlineData("_count=ten", "1 to 50")]
    [InlineData("_count=5&_count=6", "only once")]
    [InlineData("_sort=name", "_sort must be")]
    [InlineData("_sort=_id", "_sort must be")]
    [InlineData("cursor=", "must not be empty")]
    public async Task Bad_search_parameters_are_400_explaining_the_allowed_form(string query, string expected)
    {
        var body = await _client.GetJsonAsync("v1/Patient?" + query, HttpStatusCode.BadRequest);
        Assert.Contains(expected, PitApi.AssertOutcome(body, "invalid"));
    }

    [Fact]
    public async Task A_cursor_together_with_lastUpdated_is_400()
    {
        var next = (await _client.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK)).Link("next")!;
        var body = await _client.GetJsonAsync(next + "&_lastUpdated=ge2020-01-01T00:00Z", HttpStatusCode.BadRequest);
        Assert.Contains("cannot be combined", PitApi.AssertOutcome(body, "invalid"));
    }

    [Fact]
    public async Task Forged_or_truncated_cursors_are_400()
    {
        var next = (await _client.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK)).Link("next")!;
        var cursor = next[(next.IndexOf("cursor=", StringComparison.Ordinal) + 7)..];
        var flipped = cursor[..10] + (cursor[10] == 'A' ? 'B' : 'A') + cursor[11..];
        foreach (var bad in new[] { flipped, cursor[..^4], "AAAA", "not-base64!", new string('A', 80) })
        {
            var body = await _client.GetJsonAsync("v1/Patient?cursor=" + Uri.EscapeDataString(bad), HttpStatusCode.BadRequest);
            PitApi.AssertOutcome(body, "invalid");
        }
    }

    [Fact]
    public async Task A_cursor_from_another_server_key_is_400()
    {
        await using var other = await TestServer.StartAsync();
        using var otherClient = other.CreateClient();
        await otherClient.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        await otherClient.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        var foreign = (await otherClient.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK)).Link("next")!;
        var query = new Uri(foreign).Query;
        await _client.GetJsonAsync("v1/Patient" + query, HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Unknown_parameters_are_400_listing_them()
    {
        var body = await _client.GetJsonAsync("v1/Patient?name=Olsen&birthdate=2000", HttpStatusCode.BadRequest);
        Assert.Contains("birthdate, name", PitApi.AssertOutcome(body, "not-supported"));
    }

    [Fact]
    public async Task Unknown_parameters_are_ignored_and_reported_under_lenient_handling()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/Patient?name=Olsen&_count=3");
        request.Headers.Add("Prefer", "handling=lenient");
        var (status, bundle) = await _client.SendJsonAsync(request);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3, bundle.Resources().Count);
        var outcome = bundle["entry"]!.AsArray().Single(e => (string?)e!["search"]!["mode"] == "outcome")!["resource"]!;
        Assert.Contains("name", PitApi.AssertOutcome(outcome, "not-supported"));
    }

    [Fact]
    public async Task Reading_a_patient_returns_it_with_version_headers_and_unknown_ids_are_404()
    {
        var id = (string)_patients[0]["id"]!;
        using var response = await _client.GetAsync($"v1/Patient/{id}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("W/\"1\"", response.Headers.ETag?.ToString());

        PitApi.AssertOutcome(await _client.GetJsonAsync("v1/Patient/doesnotexist", HttpStatusCode.NotFound), "not-found");
        PitApi.AssertOutcome(await _client.GetJsonAsync("v1/Patient/bad$id", HttpStatusCode.NotFound), "not-found");
    }

    [Fact]
    public async Task Xml_is_not_acceptable()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/Patient");
        request.Headers.Add("Accept", "application/fhir+xml");
        var (status, body) = await _client.SendJsonAsync(request);
        Assert.Equal(HttpStatusCode.NotAcceptable, status);
        PitApi.AssertOutcome(body, "not-supported");
        await _client.GetJsonAsync("v1/Patient?_format=xml", HttpStatusCode.NotAcceptable);
        await _client.GetJsonAsync("v1/Patient?_format=json", HttpStatusCode.OK);
    }

    private async Task<IReadOnlyList<JsonNode>> SearchAsync(string query) => (await _client.GetJsonAsync("v1/Patient?" + query, HttpStatusCode.OK)).Resources();

    private async Task<List<string>> FollowAsync(string url)
    {
        var seen = new List<string>();
        string? next = url;
        while (next is not null)
        {
            var bundle = await _client.GetJsonAsync(next, HttpStatusCode.OK);
            seen.AddRange(Ids(bundle.Resources()));
            next = bundle.Link("next");
        }

        return seen;
    }

    private static List<string> Ids(IEnumerable<JsonNode> resources) => [.. resources.Select(r => (string)r["id"]!)];
}
