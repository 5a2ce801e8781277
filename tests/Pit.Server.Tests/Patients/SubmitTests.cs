using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Pit.Server.Fhir;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class SubmitTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private readonly HttpClient _client = fixture.Server.CreateClient();

    [Fact]
    public async Task Accepted_submission_answers_202_with_a_status_url_and_is_processed_into_a_patient()
    {
        var fnr = TestPatients.NewFnr();
        using var response = await _client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(fnr)));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var statusUrl = response.Content.Headers.ContentLocation;
        Assert.NotNull(statusUrl);
        Assert.StartsWith(fixture.Server.BaseAddress + "v1/submissions/", statusUrl!.ToString());
        PitApi.AssertOutcome(JsonNode.Parse(await response.Content.ReadAsStringAsync())!, "informational");

        var (status, body, location) = await _client.WaitProcessedAsync(statusUrl);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("Patient/", PitApi.AssertOutcome(body, "informational"));
        Assert.NotNull(location);

        var patient = await _client.GetJsonAsync(location!.ToString(), HttpStatusCode.OK);
        Assert.Equal(fnr, (string?)patient["identifier"]![0]!["value"]);
        Assert.Equal("1", (string?)patient["meta"]!["versionId"]);
        Assert.Equal("urn:oid:2.16.578.1.12.4.1.4.101", (string?)patient["meta"]!["tag"]![0]!["system"]);
        Assert.Matches(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$", (string?)patient["meta"]!["lastUpdated"]);
    }

    [Fact]
    public async Task Client_supplied_id_and_meta_are_replaced_by_the_servers()
    {
        var json = JsonNode.Parse(TestPatients.Json(TestPatients.NewFnr()))!;
        json["id"] = "my-own-id";
        json["meta"] = new JsonObject { ["versionId"] = "77", ["lastUpdated"] = "2001-01-01T00:00:00Z" };

        var patient = await _client.SubmitAndReadAsync(json.ToJsonString());

        Assert.NotEqual("my-own-id", (string?)patient["id"]);
        Assert.Equal("1", (string?)patient["meta"]!["versionId"]);
        Assert.StartsWith(DateTime.UtcNow.Year.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)patient["meta"]!["lastUpdated"]);
    }

    [Fact]
    public async Task A_second_submission_for_the_same_identifier_becomes_version_2_of_the_same_patient()
    {
        var fnr = TestPatients.NewFnr();
        var first = await _client.SubmitAndReadAsync(TestPatients.Json(fnr, family: "Hansen"));
        var second = await _client.SubmitAndReadAsync(TestPatients.Json(fnr, family: "Olsen"));

        Assert.Equal((string?)first["id"], (string?)second["id"]);
        Assert.Equal("2", (string?)second["meta"]!["versionId"]);
        Assert.Equal("Olsen", (string?)second["name"]![0]!["family"]);
        Assert.True(string.CompareOrdinal((string?)second["meta"]!["lastUpdated"], (string?)first["meta"]!["lastUpdated"]) > 0);
    }

    [Fact]
    public async Task Resubmitting_identical_content_creates_no_new_version_and_keeps_lastUpdated()
    {
        var json = TestPatients.Json(TestPatients.NewFnr());
        var first = await _client.SubmitAndReadAsync(json);

        var (status, body, _) = await _client.WaitProcessedAsync(await _client.SubmitAsync(json));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("no new version", PitApi.AssertOutcome(body, "informational"));

        var again = await _client.GetJsonAsync($"v1/Patient/{first["id"]}", HttpStatusCode.OK);
        Assert.Equal("1", (string?)again["meta"]!["versionId"]);
        Assert.Equal((string?)first["meta"]!["lastUpdated"], (string?)again["meta"]!["lastUpdated"]);
    }

    [Theory]
    [InlineData("application/fhir+json")]
    [InlineData("application/json")]
    [InlineData("application/fhir+json; charset=utf-8")]
    [InlineData("application/json; charset=UTF-8")]
    public async Task Json_media_types_are_accepted(string contentType)
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(TestPatients.Json(TestPatients.NewFnr())));
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        using var response = await _client.PostAsync("v1/Patient", content);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/xml")]
    [InlineData("application/fhir+xml")]
    [InlineData("application/fhir+json; charset=iso-8859-1")]
    public async Task Other_media_types_are_refused_with_415(string contentType)
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(TestPatients.Json(TestPatients.NewFnr())));
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = content });
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        PitApi.AssertOutcome(body, "not-supported");
    }

    [Fact]
    public async Task A_body_over_900_KB_is_refused_with_413_from_its_content_length()
    {
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient")
        {
            Content = TestPatients.Content(BigPatient(950_000)),
        });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Contains("900 KB", PitApi.AssertOutcome(body, "too-long"));
    }

    [Fact]
    public async Task A_chunked_body_over_900_KB_is_refused_with_413_while_reading()
    {
        var bytes = Encoding.UTF8.GetBytes(BigPatient(950_000));
        using var content = new StreamContent(new UnseekableStream(bytes));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/fhir+json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        var (status, body) = await _client.SendJsonAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        PitApi.AssertOutcome(body, "too-long");
    }

    [Fact]
    public async Task A_body_just_under_the_limit_is_accepted()
    {
        using var response = await _client.PostAsync("v1/Patient", TestPatients.Content(BigPatient(900_000)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Theory]
    [InlineData("{\"resourceType\":\"Patient\",", "well-formed")]
    [InlineData("[1,2]", "JSON object")]
    [InlineData("not json", "well-formed")]
    [InlineData("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}", "Expected a Patient")]
    [InlineData("{\"identifier\":[{\"system\":\"urn:oid:2.16.578.1.12.4.1.4.1\",\"value\":\"1\"}]}", "The body has no resourceType; a Patient starts with \"resourceType\": \"Patient\".")]
    public async Task Malformed_bodies_and_other_resource_types_are_400(string json, string expected)
    {
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = TestPatients.Content(json) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(expected, PitApi.AssertOutcome(body, "structure"));
    }

    [Theory]
    [InlineData("\"foo\":1", "Patient.foo")]
    [InlineData("\"active\":\"yes\"", "Patient.active")]
    [InlineData("\"birthDate\":\"2020-13-01\"", "Patient.birthDate")]
    [InlineData("\"maritalStatus\":\"M\"", "Patient.maritalStatus")]
    [InlineData("\"multipleBirthInteger\":\"two\"", "Patient.multipleBirth")]
    [InlineData("\"contact\":[{\"gender\":\"hund\"}]", "Patient.contact[0].gender")]
    public async Task Invalid_fhir_content_is_400_naming_the_location(string member, string location)
    {
        var json = TestPatients.Json(TestPatients.NewFnr()).TrimEnd('}') + "," + member + "}";
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = TestPatients.Content(json) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        PitApi.AssertOutcome(body, "structure");
        Assert.Contains(body["issue"]!.AsArray(), i => i!["expression"]?.AsArray().Any(e => ((string?)e)!.StartsWith(location, StringComparison.Ordinal)) == true);
    }

    [Fact]
    public async Task A_patient_without_a_norwegian_person_identifier_is_400()
    {
        var json = TestPatients.Json("12345", system: "urn:oid:1.2.3");
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = TestPatients.Content(json) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("Norwegian person identifier", PitApi.AssertOutcome(body, "required"));
    }

    [Theory]
    [InlineData("13097248023", "control digits")]
    [InlineData("1309724802", "11 digits")]
    [InlineData("3213724802X", "11 digits")]
    public async Task An_invalid_fodselsnummer_is_400_naming_the_identifier(string fnr, string expected)
    {
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = TestPatients.Content(TestPatients.Json(fnr)) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var text = PitApi.AssertOutcome(body, "value");
        Assert.Contains(expected, text);
        Assert.Contains("Patient.identifier[0]", text);
        Assert.Equal("Patient.identifier[0].value", (string?)body["issue"]![0]!["expression"]![0]);
    }

    [Fact]
    public async Task A_fodselsnummer_with_an_impossible_date_is_400()
    {
        var fnr = TestPatients.FromParts(30, 2, 1, 10);
        var (status, body) = await _client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient") { Content = TestPatients.Content(TestPatients.Json(fnr)) });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not a valid date", PitApi.AssertOutcome(body, "value"));
    }

    [Fact]
    public async Task Valid_real_synthetic_and_d_numbers_are_accepted()
    {
        await _client.SubmitAsync(TestPatients.Json(TestPatients.Fnr(new DateOnly(1972, 9, 13), 480, monthOffset: 0)));
        await _client.SubmitAsync(TestPatients.Json(TestPatients.Fnr(new DateOnly(1985, 3, 1), 123, monthOffset: 40)));
        await _client.SubmitAsync(TestPatients.Json(TestPatients.Fnr(new DateOnly(1990, 6, 30), 321, monthOffset: 80)));
        await _client.SubmitAsync(TestPatients.Json(TestPatients.Fnr(new DateOnly(1990, 6, 30), 321, monthOffset: 0, dNumber: true), system: TestPatients.DnrSystem));
    }

    [Fact]
    public async Task Synthetic_numbers_are_refused_when_the_setting_forbids_them()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Validation:AllowSyntheticIdentifiers"] = "false" });
        using var client = server.CreateClient();
        var (status, body) = await client.SendJsonAsync(new HttpRequestMessage(HttpMethod.Post, "v1/Patient")
        {
            Content = TestPatients.Content(TestPatients.Json(TestPatients.Fnr(new DateOnly(1985, 3, 1), 123, monthOffset: 80))),
        });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("synthetic", PitApi.AssertOutcome(body, "value"));
        await client.SubmitAsync(TestPatients.Json(TestPatients.Fnr(new DateOnly(1985, 3, 1), 123, monthOffset: 0)));
    }

    [Fact]
    public async Task Identifiers_that_belong_to_two_existing_patients_end_as_a_failed_status_with_the_reason()
    {
        var a = TestPatients.NewFnr();
        var b = TestPatients.NewFnr();
        await _client.SubmitAndReadAsync(TestPatients.Json(a));
        await _client.SubmitAndReadAsync(TestPatients.Json(b));
        var both = JsonNode.Parse(TestPatients.Json(a))!;
        both["identifier"]!.AsArray().Add(new JsonObject { ["system"] = TestPatients.FnrSystem, ["value"] = b });

        var (status, body, _) = await _client.WaitProcessedAsync(await _client.SubmitAsync(both.ToJsonString()));

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Contains("more than one existing Patient", PitApi.AssertOutcome(body, "processing"));
    }

    [Fact]
    public async Task An_unknown_submission_status_is_404()
    {
        var body = await _client.GetJsonAsync($"v1/submissions/{Guid.NewGuid()}", HttpStatusCode.NotFound);
        PitApi.AssertOutcome(body, "not-found");
        await _client.GetJsonAsync("v1/submissions/not-a-guid", HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_body_with_13000_bad_identity_numbers_gets_400_listing_the_first_100_and_how_many_more_in_a_body_smaller_than_the_request()
    {
        var json = TestPatients.WithBadIdentityNumbers(13_000);
        Assert.InRange(json.Length, 800_000, PatientSubmissionLimit);

        var (issues, answerBytes) = await RefusedAsync(json);

        Assert.Equal(Outcomes.MaxIssues + 1, issues.Count);
        Assert.All(issues.Take(Outcomes.MaxIssues), i => Assert.Equal("value", (string?)i!["code"]));
        Assert.Contains("control digits", (string?)issues[0]!["diagnostics"], StringComparison.Ordinal);
        Assert.Equal("Patient.identifier[1].value", (string?)issues[0]!["expression"]![0]);
        var last = issues[^1]!;
        Assert.Equal("information", (string?)last["severity"]);
        Assert.Equal("…and 12,900 more problems not listed (an answer lists the first 100).", (string?)last["diagnostics"]);
        Assert.True(answerBytes < json.Length / 10, $"{answerBytes} bytes answered {json.Length}");
    }

    [Fact]
    public async Task A_body_with_20000_unknown_elements_gets_400_with_at_most_101_issues_in_a_body_smaller_than_the_request()
    {
        var json = new StringBuilder(TestPatients.Json(TestPatients.NewFnr()).TrimEnd('}'));
        for (var i = 0; i < 20_000; i++)
        {
            json.Append(CultureInfo.InvariantCulture, $",\"unknown{i:D5}\":1");
        }

        var body = json.Append('}').ToString();
        Assert.InRange(body.Length, 300_000, 420_000);

        var (issues, answerBytes) = await RefusedAsync(body);

        Assert.Equal(Outcomes.MaxIssues + 1, issues.Count);
        Assert.Contains("unknown00000", (string?)issues[0]!["diagnostics"], StringComparison.Ordinal);
        Assert.Matches(@"^…and \d{2},\d{3} more problems not listed", (string?)issues[^1]!["diagnostics"]);
        Assert.True(answerBytes < body.Length / 4, $"{answerBytes} bytes answered {body.Length}");
    }

    [Fact]
    public async Task Huge_element_names_are_shortened_in_the_answer_so_it_stays_smaller_than_the_request()
    {
        var json = new StringBuilder(TestPatients.Json(TestPatients.NewFnr()).TrimEnd('}'));
        for (var i = 0; i < 150; i++)
        {
            json.Append(CultureInfo.InvariantCulture, $",\"{i:D3}{new string('n', 5_000)}\":1");
        }

        var body = json.Append('}').ToString();

        var (issues, answerBytes) = await RefusedAsync(body);

        Assert.Equal(Outcomes.MaxIssues + 1, issues.Count);
        Assert.All(issues, i => Assert.InRange(((string?)i!["diagnostics"])!.Length, 1, Outcomes.MaxTextLength));
        Assert.All(issues, i => Assert.All(i!["expression"]?.AsArray() ?? [], e => Assert.InRange(((string?)e)!.Length, 1, Outcomes.MaxTextLength)));
        Assert.True(answerBytes < body.Length, $"{answerBytes} bytes answered {body.Length}");
    }

    [Theory]
    [InlineData("""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"FNR"}],"resourceType":"Observation"}""", "Patient")]
    [InlineData("""{"resourceType":"Patient","resource\u0054ype":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"FNR"}]}""", "Patient")]
    [InlineData("""{"resourceType":"Patient","contained":[{"resourceType":"Organization","name":"A"},{"resourceType":"Organization","resourceType":"Patient"}],"identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"FNR"}]}""", "Patient.contained[1]")]
    public async Task A_repeated_resourceType_is_refused_with_400_naming_it_at_any_depth(string template, string where)
    {
        using var response = await _client.PostAsync("v1/Patient", TestPatients.Content(template.Replace("FNR", TestPatients.NewFnr(), StringComparison.Ordinal)));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"'resourceType' appears more than once in one object (at {where})", PitApi.AssertOutcome(body, "structure"), StringComparison.Ordinal);
        Assert.Contains(body["issue"]!.AsArray(), i => (string?)i!["expression"]?[0] == where + ".resourceType");
    }

    [Fact]
    public async Task Any_other_repeated_property_is_refused_with_400_too()
    {
        var json = TestPatients.Json(TestPatients.NewFnr()).TrimEnd('}') + ""","gender":"male"}""";
        using var response = await _client.PostAsync("v1/Patient", TestPatients.Content(json));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("gender", PitApi.AssertOutcome(JsonNode.Parse(await response.Content.ReadAsStringAsync())!, "structure"), StringComparison.Ordinal);
    }

    private const int PatientSubmissionLimit = Pit.Server.Patients.PatientSubmissionReader.MaxBodyBytes;

    private async Task<(JsonArray Issues, int AnswerBytes)> RefusedAsync(string json)
    {
        using var response = await _client.PostAsync("v1/Patient", TestPatients.Content(json));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {Encoding.UTF8.GetString(bytes.AsSpan(0, Math.Min(bytes.Length, 2000)))}");
        var body = JsonNode.Parse(bytes)!;
        Assert.Equal("OperationOutcome", (string?)body["resourceType"]);
        return (body["issue"]!.AsArray(), bytes.Length);
    }

    private static string BigPatient(int size)
    {
        var json = JsonNode.Parse(TestPatients.Json(TestPatients.NewFnr()))!;
        var skeleton = json.ToJsonString().Length + 40;
        json["name"]![0]!["text"] = new string('x', size - skeleton);
        return json.ToJsonString();
    }

    private sealed class UnseekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
