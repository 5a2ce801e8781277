using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.Server.Tests.Fhir;

/// <summary>
/// Every kind of answer the server gives, fetched over HTTP from the real server and checked with Firely's strict
/// parser and validator (<see cref="FhirValidation"/>): Bundles, Patients, the CapabilityStatement, the published
/// StructureDefinitions and every OperationOutcome, success and error alike. Any issue of severity error or fatal
/// fails the test and is printed; for Bundles, the Patient and the CapabilityStatement a warning does too.
/// </summary>
public sealed class FhirValidityTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private readonly TestServer _server = fixture.Server;

    [Fact]
    public async Task Searchset_bundles_empty_full_and_with_a_lenient_warning_are_valid_fhir()
    {
        var validation = await FhirValidation.ForAsync(_server);
        using var client = _server.CreateClient();
        await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr(), family: "Olsen"));

        var empty = await AnswerAsync(client, "v1/Patient?_lastUpdated=gt2999-01-01T00:00:00Z", HttpStatusCode.OK);
        var full = await AnswerAsync(client, "v1/Patient?_count=1", HttpStatusCode.OK);
        using var lenientRequest = new HttpRequestMessage(HttpMethod.Get, "v1/Patient?_count=1&unknown-parameter=1");
        lenientRequest.Headers.Add("Prefer", "handling=lenient");
        var lenient = await AnswerAsync(client, lenientRequest, HttpStatusCode.OK);

        Assert.Null(JsonNode.Parse(empty)!["entry"]);
        Assert.NotNull(JsonNode.Parse(full)!.Link("next"));
        var warning = JsonNode.Parse(lenient)!["entry"]!.AsArray().Single(e => (string?)e!["search"]!["mode"] == "outcome")!;
        Assert.StartsWith("urn:uuid:", (string?)warning["fullUrl"], StringComparison.Ordinal);
        validation.AssertValid([("empty searchset", empty), ("full searchset", full), ("searchset with a lenient warning", lenient)], warningsToo: true);
    }

    [Fact]
    public async Task A_patient_read_with_its_provenance_extensions_is_valid_and_they_resolve_to_the_published_definitions()
    {
        var validation = await FhirValidation.ForAsync(_server);
        using var client = _server.CreateClient(orgnrChild: "987654325");
        var stored = await client.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        var patient = await AnswerAsync(client, $"v1/Patient/{stored["id"]}", HttpStatusCode.OK);

        var extensions = JsonNode.Parse(patient)!["meta"]!["extension"]!.AsArray().Select(e => (string)e!["url"]!).ToList();
        Assert.Equal(ProvenanceExtensions.All.Order(StringComparer.Ordinal), extensions.Order(StringComparer.Ordinal));
        validation.AssertValid([("Patient read", patient)], warningsToo: true);
    }

    [Fact]
    public void Without_the_published_definitions_the_provenance_extensions_would_not_resolve()
    {
        // The check above can fail: the same Patient against the core specification alone is an error per extension.
        var json = JsonNode.Parse(TestPatients.Json(TestPatients.NewFnr()))!;
        json["meta"] = new JsonObject
        {
            ["extension"] = new JsonArray(new JsonObject { ["url"] = ProvenanceExtensions.SubmissionId, ["valueString"] = Guid.NewGuid().ToString("D") }),
        };

        var errors = FhirValidation.CoreOnly().Errors(json.ToJsonString(), "Patient with an unpublished extension");

        Assert.Contains(errors, e => e.Contains(ProvenanceExtensions.SubmissionId, StringComparison.Ordinal));
    }

    [Fact]
    public void The_checks_catch_what_searchset_bundles_used_to_get_wrong()
    {
        // An empty entry array (no matches) and an outcome entry without fullUrl (lenient handling): both must fail.
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() =>
            FhirValidation.ParseStrict("""{"resourceType":"Bundle","type":"searchset","entry":[]}""", "empty entry array"));
        var noFullUrl = """
            {"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"OperationOutcome",
            "issue":[{"severity":"warning","code":"not-supported","diagnostics":"Ignored."}]},"search":{"mode":"outcome"}}]}
            """;

        Assert.Contains(FhirValidation.CoreOnly().Errors(noFullUrl, "outcome entry without fullUrl"), e => e.Contains("bdl-15", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_published_structure_definitions_are_valid_and_define_every_provenance_extension_as_a_string()
    {
        var validation = await FhirValidation.ForAsync(_server);

        Assert.Equal(ProvenanceExtensions.All.Order(StringComparer.Ordinal), validation.Published.Select(d => d.Url).Order(StringComparer.Ordinal));
        Assert.All(validation.Published, d =>
        {
            Assert.Equal("Extension", d.Type);
            Assert.Equal("string", Assert.Single(d.Differential!.Element.Single(e => e.Path == "Extension.value[x]").Type).Code);
        });
        using var anonymous = _server.CreateAnonymousClient();
        var answers = new List<(string, string)>();
        foreach (var definition in validation.Published)
        {
            answers.Add(($"StructureDefinition/{definition.Id}", await AnswerAsync(anonymous, $"v1/StructureDefinition/{definition.Id}", HttpStatusCode.OK)));
        }

        answers.Add(("404 for an unknown StructureDefinition", await AnswerAsync(anonymous, "v1/StructureDefinition/no-such-thing", HttpStatusCode.NotFound)));
        validation.AssertValid(answers);
    }

    [Fact]
    public async Task The_capability_statement_is_valid_and_lists_the_structure_definitions()
    {
        var validation = await FhirValidation.ForAsync(_server);
        using var anonymous = _server.CreateAnonymousClient();
        var metadata = await AnswerAsync(anonymous, "v1/metadata", HttpStatusCode.OK);

        var resources = JsonNode.Parse(metadata)!["rest"]![0]!["resource"]!.AsArray();
        var definitions = resources.Single(r => (string?)r!["type"] == "StructureDefinition")!;
        Assert.Equal("read", (string?)Assert.Single(definitions["interaction"]!.AsArray())!["code"]);
        Assert.All(ProvenanceExtensions.All, url => Assert.Contains(url, (string?)definitions["documentation"], StringComparison.Ordinal));
        validation.AssertValid([("CapabilityStatement", metadata)], warningsToo: true);
    }

    [Fact]
    public async Task Submission_answers_202_accepted_200_processed_and_422_failed_are_valid_outcomes()
    {
        var validation = await FhirValidation.ForAsync(_server);
        using var client = _server.CreateClient();
        var (first, second) = (TestPatients.NewFnr(), TestPatients.NewFnr());
        await client.SubmitAndReadAsync(TestPatients.Json(first));
        await client.SubmitAndReadAsync(TestPatients.Json(second));

        using var accepted = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(TestPatients.NewFnr())));
        var acceptedBody = await BodyAsync(accepted, HttpStatusCode.Accepted);
        var processed = await AnswerAsync(client, accepted.Content.Headers.ContentLocation!.ToString(), HttpStatusCode.OK, waitWhileAccepted: true);

        // Two identity numbers of two different stored Patients: the submission is ambiguous and fails.
        var both = JsonNode.Parse(TestPatients.Json(first))!;
        both["identifier"]!.AsArray().Add(new JsonObject { ["system"] = TestPatients.FnrSystem, ["value"] = second });
        var statusUrl = await client.SubmitAsync(both.ToJsonString());
        var failed = await AnswerAsync(client, statusUrl.ToString(), HttpStatusCode.UnprocessableEntity, waitWhileAccepted: true);

        validation.AssertValid([("202 accepted", acceptedBody), ("200 processed", processed), ("422 failed", failed)]);
    }

    [Fact]
    public async Task Every_error_outcome_400_401_403_404_406_413_415_is_valid_fhir()
    {
        var validation = await FhirValidation.ForAsync(_server);
        using var client = _server.CreateClient();
        using var readOnly = _server.CreateClient(scopes: [AccessTokenMinter.ReadScope]);
        using var anonymous = _server.CreateAnonymousClient();
        var answers = new List<(string, string)>
        {
            ("400 search", await AnswerAsync(client, "v1/Patient?_count=0&_sort=name&_lastUpdated=2024", HttpStatusCode.BadRequest)),
            ("400 submit", await PostAsync(client, """{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"12345678901"}],"foo":1}""", HttpStatusCode.BadRequest)),
            ("400 submit, not JSON", await PostAsync(client, "{", HttpStatusCode.BadRequest)),
            ("400 submit, repeated resourceType", await PostAsync(client, """{"resourceType":"Patient","resourceType":"Observation"}""", HttpStatusCode.BadRequest)),
            ("400 submit, capped", await PostAsync(client, TestPatients.WithBadIdentityNumbers(300), HttpStatusCode.BadRequest)),
            ("401", await AnswerAsync(anonymous, "v1/Patient", HttpStatusCode.Unauthorized)),
            ("403", await PostAsync(readOnly, TestPatients.Json(TestPatients.NewFnr()), HttpStatusCode.Forbidden)),
            ("404 read", await AnswerAsync(client, "v1/Patient/no-such-patient", HttpStatusCode.NotFound)),
            ("404 submission", await AnswerAsync(client, $"v1/submissions/{Guid.NewGuid()}", HttpStatusCode.NotFound)),
            ("404 route", await AnswerAsync(client, "v1/Observation", HttpStatusCode.NotFound)),
            ("406", await AnswerAsync(client, "v1/Patient?_format=xml", HttpStatusCode.NotAcceptable)),
            ("413", await PostAsync(client, new string(' ', 1_000_000) + TestPatients.Json(TestPatients.NewFnr()), HttpStatusCode.RequestEntityTooLarge)),
        };
        using (var text = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(TestPatients.NewFnr()), "text/plain")))
        {
            answers.Add(("415", await BodyAsync(text, HttpStatusCode.UnsupportedMediaType)));
        }

        validation.AssertValid(answers);
    }

    [Fact]
    public async Task Outcomes_of_a_failing_store_503_and_500_and_a_queued_submission_202_are_valid_fhir()
    {
        await using var server = await TestServer.StartAsync(configure: b =>
        {
            b.Services.DecorateStore<ISubmissionQueueStore>(store => new FailingQueueStore(store) { WritesToFail = 1, AppliesToFail = int.MaxValue });
            b.Services.DecorateStore<IPatientFeedStore>(store => new FailingFeedStore(store));
        });
        var validation = await FhirValidation.ForAsync(server);
        using var client = server.CreateClient();

        var unavailable = await PostAsync(client, TestPatients.Json(TestPatients.NewFnr()), HttpStatusCode.ServiceUnavailable);
        var statusUrl = await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        var queued = await AnswerAsync(client, statusUrl.ToString(), HttpStatusCode.Accepted);
        var unexpected = await AnswerAsync(client, "v1/Patient/some-patient", HttpStatusCode.InternalServerError);

        validation.AssertValid([("503", unavailable), ("202 queued", queued), ("500", unexpected)]);
    }

    [Fact]
    public async Task A_429_outcome_is_valid_fhir()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:RateLimiting:PermitsPerSecond"] = "0.001",
            ["Pit:RateLimiting:Burst"] = "1",
        });
        var validation = await FhirValidation.ForAsync(server);
        using var client = server.CreateClient();

        await AnswerAsync(client, "v1/Patient", HttpStatusCode.OK);
        var throttled = await AnswerAsync(client, "v1/Patient", HttpStatusCode.TooManyRequests);

        validation.AssertValid([("429", throttled)]);
    }

    private static Task<string> AnswerAsync(HttpClient client, string url, HttpStatusCode expected, bool waitWhileAccepted = false) =>
        AnswerAsync(client, () => new HttpRequestMessage(HttpMethod.Get, url), expected, waitWhileAccepted);

    private static Task<string> AnswerAsync(HttpClient client, HttpRequestMessage request, HttpStatusCode expected) =>
        AnswerAsync(client, () => request, expected, waitWhileAccepted: false);

    private static async Task<string> AnswerAsync(HttpClient client, Func<HttpRequestMessage> request, HttpStatusCode expected, bool waitWhileAccepted)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var message = request();
            using var response = await client.SendAsync(message);
            if (waitWhileAccepted && response.StatusCode == HttpStatusCode.Accepted && attempt < 300)
            {
                await System.Threading.Tasks.Task.Delay(50);
                continue;
            }

            return await BodyAsync(response, expected);
        }
    }

    private static async Task<string> PostAsync(HttpClient client, string json, HttpStatusCode expected)
    {
        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(json));
        return await BodyAsync(response, expected);
    }

    private static async Task<string> BodyAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"Expected {(int)expected} from {response.RequestMessage?.RequestUri}, got {(int)response.StatusCode}: {text}");
        Assert.Equal(new MediaTypeHeaderValue("application/fhir+json") { CharSet = "utf-8" }, response.Content.Headers.ContentType);
        return text;
    }
}
