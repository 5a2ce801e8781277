using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;
using Hl7.Fhir.Serialization;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Reference;

public sealed class OpenApiDocumentTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly string[] Authenticated = ["401", "403", "406", "429", "500", "503"];

    [Fact]
    public async Task The_document_describes_every_operation_with_each_status_and_its_fhir_body()
    {
        var paths = (await DocumentAsync())["paths"]!;

        AssertStatuses(paths["/v1/Patient"]!["post"]!, ["202", "400", "413", "415", .. Authenticated]);
        AssertStatuses(paths["/v1/Patient"]!["get"]!, ["200", "400", .. Authenticated]);
        AssertStatuses(paths["/v1/Patient/{id}"]!["get"]!, ["200", "404", .. Authenticated]);
        AssertStatuses(paths["/v1/submissions/{id}"]!["get"]!, ["200", "202", "404", "422", .. Authenticated]);
        AssertStatuses(paths["/v1/metadata"]!["get"]!, ["200", "500"]);
        AssertStatuses(paths["/v1/StructureDefinition/{id}"]!["get"]!, ["200", "404", "500"]);

        Assert.Equal("Bundle", BodySchema(paths["/v1/Patient"]!["get"]!, "200"));
        Assert.Equal("Patient", BodySchema(paths["/v1/Patient/{id}"]!["get"]!, "200"));
        Assert.Equal("CapabilityStatement", BodySchema(paths["/v1/metadata"]!["get"]!, "200"));
        Assert.Equal("StructureDefinition", BodySchema(paths["/v1/StructureDefinition/{id}"]!["get"]!, "200"));
        Assert.Equal("OperationOutcome", BodySchema(paths["/v1/Patient"]!["post"]!, "202"));
        foreach (var operation in Operations(paths))
        {
            foreach (var (status, response) in operation["responses"]!.AsObject())
            {
                if (status[0] is '4' or '5')
                {
                    Assert.Equal("OperationOutcome", BodySchema(operation, status));
                }
            }
        }
    }

    [Fact]
    public async Task Error_answers_name_their_headers()
    {
        var post = (await DocumentAsync())["paths"]!["/v1/Patient"]!["post"]!["responses"]!;
        Assert.NotNull(post["503"]!["headers"]!["Retry-After"]);
        Assert.NotNull(post["401"]!["headers"]!["WWW-Authenticate"]);
        Assert.NotNull(post["401"]!["headers"]!["DPoP-Nonce"]);
        Assert.NotNull(post["202"]!["headers"]!["Content-Location"]);
        Assert.Contains("correlation id", (string?)post["500"]!["description"], StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Search_parameters_carry_their_rules()
    {
        var parameters = (await DocumentAsync())["paths"]!["/v1/Patient"]!["get"]!["parameters"]!.AsArray()
            .ToDictionary(p => (string)p!["name"]!, p => p!);

        var lastUpdated = parameters["_lastUpdated"];
        Assert.Equal("query", (string?)lastUpdated["in"]);
        var description = (string)lastUpdated["description"]!;
        Assert.Contains("gt, ge, lt or le", description, StringComparison.Ordinal);
        Assert.Contains("minute precision", description, StringComparison.Ordinal);
        Assert.Contains("Not combinable with cursor", description, StringComparison.Ordinal);
        Assert.Equal(2, (int?)lastUpdated["schema"]!["maxItems"]);
        Assert.Matches((string)lastUpdated["schema"]!["items"]!["pattern"]!, "ge2024-01-01T12:00Z");
        Assert.DoesNotMatch((string)lastUpdated["schema"]!["items"]!["pattern"]!, "2024-01-01T12:00Z");

        var count = parameters["_count"]["schema"]!;
        Assert.Equal(1, (int?)count["minimum"]);
        Assert.Equal(50, (int?)count["maximum"]);
        Assert.Equal(20, (int?)count["default"]);

        Assert.Equal(["_lastUpdated", "-_lastUpdated"], parameters["_sort"]["schema"]!["enum"]!.AsArray().Select(v => (string?)v));
        Assert.Contains("cannot be combined with _lastUpdated", (string?)parameters["cursor"]["description"], StringComparison.Ordinal);
        Assert.Equal("header", (string?)parameters["Prefer"]["in"]);
        Assert.Contains("handling=lenient", (string?)parameters["Prefer"]["description"], StringComparison.Ordinal);
        Assert.Contains("xml", (string?)parameters["_format"]["description"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Submit_takes_a_fhir_patient_body()
    {
        var body = (await DocumentAsync())["paths"]!["/v1/Patient"]!["post"]!["requestBody"]!;
        Assert.True((bool?)body["required"]);
        Assert.Equal("#/components/schemas/Patient", (string?)body["content"]!["application/fhir+json"]!["schema"]!["$ref"]);
        Assert.Contains("900 KB", (string?)body["description"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Operations_require_an_authorization_dpop_header_and_a_dpop_proof_header_together_with_their_scope()
    {
        var document = await DocumentAsync();
        var schemes = document["components"]!["securitySchemes"]!;
        // Two header schemes, so that reference pages send "Authorization: DPoP <token>" and "DPoP: <proof>" as given
        // instead of guessing Basic or Bearer for an http scheme they do not know.
        Assert.Equal("apiKey", (string?)schemes["DPoP"]!["type"]);
        Assert.Equal("header", (string?)schemes["DPoP"]!["in"]);
        Assert.Equal("Authorization", (string?)schemes["DPoP"]!["name"]);
        Assert.Contains("Authorization: DPoP <access token>", (string?)schemes["DPoP"]!["description"], StringComparison.Ordinal);
        Assert.Equal("apiKey", (string?)schemes["DPoPProof"]!["type"]);
        Assert.Equal("header", (string?)schemes["DPoPProof"]!["in"]);
        Assert.Equal("DPoP", (string?)schemes["DPoPProof"]!["name"]);

        var paths = document["paths"]!;
        Assert.Equal("nhn:pit/api.write", Scope(paths["/v1/Patient"]!["post"]!));
        Assert.Equal("nhn:pit/api.read", Scope(paths["/v1/Patient"]!["get"]!));
        Assert.Equal("nhn:pit/api.read", Scope(paths["/v1/Patient/{id}"]!["get"]!));
        Assert.Equal("nhn:pit/api.write", Scope(paths["/v1/submissions/{id}"]!["get"]!));
        Assert.Null(paths["/v1/metadata"]!["get"]!["security"]);
        Assert.Null(paths["/v1/StructureDefinition/{id}"]!["get"]!["security"]);
        Assert.Contains("docs/AUTHENTICATION.md", (string?)document["info"]!["description"], StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(ServerCommandLine.RepositoryRoot(), "docs", "AUTHENTICATION.md")), "the guide the description names exists");
    }

    [Fact]
    public async Task The_document_names_the_server_by_its_public_base_url()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:PublicBaseUrl"] = "https://api.pit.example.test/" });
        using var client = server.CreateAnonymousClient();
        var document = JsonNode.Parse(await client.GetStringAsync("openapi/v1.json"))!;
        var local = await DocumentAsync();

        Assert.Equal("https://api.pit.example.test", (string?)Assert.Single(document["servers"]!.AsArray())!["url"]);
        Assert.Equal(fixture.Server.BaseAddress.AbsoluteUri.TrimEnd('/'), (string?)Assert.Single(local["servers"]!.AsArray())!["url"]);
    }

    [Fact]
    public async Task Every_authenticated_operation_documents_429_and_503_with_retry_after_and_an_OperationOutcome()
    {
        foreach (var operation in Operations((await DocumentAsync())["paths"]!).Where(o => o["security"] is not null))
        {
            foreach (var status in new[] { "429", "503" })
            {
                Assert.Equal("OperationOutcome", BodySchema(operation, status));
                Assert.NotNull(operation["responses"]![status]!["headers"]!["Retry-After"]);
            }
        }
    }

    [Fact]
    public async Task The_examples_are_a_patient_the_server_accepts_and_a_searchset_bundle_that_parse_strictly_as_FHIR()
    {
        var paths = (await DocumentAsync())["paths"]!;
        var patientJson = paths["/v1/Patient"]!["post"]!["requestBody"]!["content"]!["application/fhir+json"]!["example"]!.ToJsonString();
        var bundleJson = paths["/v1/Patient"]!["get"]!["responses"]!["200"]!["content"]!["application/fhir+json"]!["example"]!.ToJsonString();
        var strict = new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector).UsingMode(DeserializationMode.Strict);

        var patient = JsonSerializer.Deserialize<Patient>(patientJson, strict)!;
        var bundle = JsonSerializer.Deserialize<Bundle>(bundleJson, strict)!;

        var fnr = Assert.Single(patient.Identifier);
        Assert.Equal("urn:oid:2.16.578.1.12.4.1.4.1", fnr.System);
        Assert.Null(Pit.Security.NorwegianIdentityNumbers.Check(fnr.Value!, dNumber: false, allowSynthetic: true));
        Assert.Equal(Bundle.BundleType.Searchset, bundle.Type);
        Assert.IsType<Patient>(Assert.Single(bundle.Entry).Resource);
        Assert.Contains(bundle.Link, l => l.Relation == "next");

        using var client = fixture.Server.CreateClient();
        using var submitted = await client.PostAsync("v1/Patient", new StringContent(patientJson, System.Text.Encoding.UTF8, "application/fhir+json"));
        Assert.Equal(HttpStatusCode.Accepted, submitted.StatusCode);
        var status = submitted.Content.Headers.ContentLocation!;
        for (var i = 0; i < 100; i++)
        {
            using var answer = await client.GetAsync(status);
            if (answer.StatusCode != HttpStatusCode.Accepted)
            {
                Assert.True(answer.StatusCode == HttpStatusCode.OK, await answer.Content.ReadAsStringAsync());
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail("The example Patient was not processed within 10 s.");
    }

    [Fact]
    public async Task The_document_and_the_reference_page_need_no_authentication()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        using var page = await client.GetAsync("docs/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("<script src=\"scalar.js\">", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var script = await client.GetAsync("docs/scalar.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.True(script.Content.Headers.ContentLength > 100_000, "the reference page's script is served by the server itself");
    }

    private async Task<JsonNode> DocumentAsync()
    {
        using var client = fixture.Server.CreateAnonymousClient();
        using var response = await client.GetAsync("openapi/v1.json");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return JsonNode.Parse(text)!;
    }

    private static IEnumerable<JsonNode> Operations(JsonNode paths) =>
        paths.AsObject().SelectMany(p => p.Value!.AsObject().Select(o => o.Value!));

    private static void AssertStatuses(JsonNode operation, string[] expected) =>
        Assert.Equal(expected.Order(StringComparer.Ordinal), operation["responses"]!.AsObject().Select(r => r.Key).Order(StringComparer.Ordinal));

    private static string BodySchema(JsonNode operation, string status)
    {
        var content = operation["responses"]![status]!["content"]!.AsObject();
        var reference = (string)Assert.Single(content, c => c.Key == "application/fhir+json").Value!["schema"]!["$ref"]!;
        return reference["#/components/schemas/".Length..];
    }

    private static string? Scope(JsonNode operation)
    {
        var requirement = Assert.Single(operation["security"]!.AsArray())!;
        Assert.Empty(requirement["DPoPProof"]!.AsArray());
        return (string?)Assert.Single(requirement["DPoP"]!.AsArray());
    }
}
