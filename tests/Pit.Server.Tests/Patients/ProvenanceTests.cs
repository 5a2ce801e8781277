using System.Net;
using System.Text.Json.Nodes;
using Pit.Security;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.Server.Tests.Patients;

/// <summary>
/// Provenance on every stored Patient version, end to end against the real server on each storage engine
/// (<see cref="SqliteProvenanceTests"/>, <see cref="PostgresProvenanceTests"/>): the meta extensions name the
/// organisation, sub-unit, client and submission that created the version, as the access token said.
/// </summary>
public abstract class ProvenanceTests : IAsyncLifetime
{
    private const string Child = "987654325";

    private TestServer _server = null!;

    protected TestServer Server => _server;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(await SettingsAsync());

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private protected abstract Task<Dictionary<string, string?>> SettingsAsync();

    [Fact]
    public async Task A_stored_Patient_read_back_and_found_by_search_names_the_organisation_sub_unit_client_and_submission_that_sent_it()
    {
        using var client = Client("epj-nord", "EPJ Nord", Child);
        var fnr = TestPatients.NewFnr();

        var (submission, patient) = await SubmitAndReadAsync(client, TestPatients.Json(fnr));
        // Each test has its own server, so the feed holds only this Patient.
        var found = Assert.Single((await client.GetJsonAsync("v1/Patient", HttpStatusCode.OK)).Resources());

        var expected = new Dictionary<string, string>
        {
            [ProvenanceExtensions.ParentOrganizationNumber] = TestServer.DefaultOrganisation,
            [ProvenanceExtensions.ChildOrganizationNumber] = Child,
            [ProvenanceExtensions.SourceClientId] = "epj-nord",
            [ProvenanceExtensions.SourceClientName] = "EPJ Nord",
            [ProvenanceExtensions.SubmissionId] = submission,
        };
        Assert.Equal(expected, Provenance(patient));
        Assert.Equal(expected, Provenance(found));
        Assert.Equal(fnr, (string?)found["identifier"]![0]!["value"]);
    }

    [Fact]
    public async Task A_second_version_by_another_client_names_that_client_and_its_own_submission_and_omits_what_its_token_lacked()
    {
        using var first = Client("epj-nord", "EPJ Nord", Child);
        using var second = Client("lab-sor", clientName: null, orgnrChild: null);
        var fnr = TestPatients.NewFnr();

        var (firstSubmission, version1) = await SubmitAndReadAsync(first, TestPatients.Json(fnr, family: "Hansen"));
        var (secondSubmission, version2) = await SubmitAndReadAsync(second, TestPatients.Json(fnr, family: "Olsen"));

        Assert.Equal((string?)version1["id"], (string?)version2["id"]);
        Assert.Equal("2", (string?)version2["meta"]!["versionId"]);
        Assert.Equal(firstSubmission, Provenance(version1)[ProvenanceExtensions.SubmissionId]);
        Assert.Equal(
            new Dictionary<string, string>
            {
                [ProvenanceExtensions.ParentOrganizationNumber] = TestServer.DefaultOrganisation,
                [ProvenanceExtensions.SourceClientId] = "lab-sor",
                [ProvenanceExtensions.SubmissionId] = secondSubmission,
            },
            Provenance(version2));
    }

    [Fact]
    public async Task An_identical_resubmission_by_another_client_creates_no_version_so_the_provenance_still_names_the_first()
    {
        using var first = Client("epj-nord", "EPJ Nord", orgnrChild: null);
        using var second = Client("lab-sor", "Lab Sør", orgnrChild: null);
        var json = TestPatients.Json(TestPatients.NewFnr());

        var (firstSubmission, version1) = await SubmitAndReadAsync(first, json);
        var (_, after) = await SubmitAndReadAsync(second, json);

        Assert.Equal("1", (string?)after["meta"]!["versionId"]);
        Assert.Equal(Provenance(version1), Provenance(after));
        Assert.Equal(firstSubmission, Provenance(after)[ProvenanceExtensions.SubmissionId]);
        Assert.Equal("epj-nord", Provenance(after)[ProvenanceExtensions.SourceClientId]);
    }

    /// <summary>A client of <see cref="TestServer.DefaultOrganisation"/> whose token names this client id and client name.</summary>
    protected HttpClient Client(string clientId, string? clientName, string? orgnrChild)
    {
        var key = DpopKey.CreateEcP256();
        var token = _server.TokenMinter.Mint(new AccessTokenSpec
        {
            Jkt = key.Thumbprint,
            ClientId = clientId,
            ClientName = clientName ?? "",
            OmitClaims = clientName is null ? [HelseIdClaims.ClientName] : [],
            OrgnrChild = orgnrChild,
        });
        return new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = new SocketsHttpHandler(), DisposesKey = true }) { BaseAddress = _server.BaseAddress };
    }

    /// <summary>The provenance extensions of a Patient as URL → value; asserts there are no others in meta.</summary>
    internal static Dictionary<string, string> Provenance(JsonNode patient)
    {
        var extensions = patient["meta"]?["extension"]?.AsArray() ?? [];
        Assert.All(extensions, e => Assert.StartsWith(ProvenanceExtensions.Namespace, (string?)e!["url"], StringComparison.Ordinal));
        return extensions.ToDictionary(e => (string)e!["url"]!, e => (string)e!["valueString"]!);
    }

    private static async Task<(string SubmissionId, JsonNode Patient)> SubmitAndReadAsync(HttpClient client, string json)
    {
        var status = await client.SubmitAsync(json);
        var (code, body, location) = await client.WaitProcessedAsync(status);
        Assert.True(code == HttpStatusCode.OK, body.ToJsonString());
        return (status.Segments[^1], await client.GetJsonAsync(location!.ToString(), HttpStatusCode.OK));
    }
}

/// <summary>Provenance on the SQLite engine, and the refusal of client-supplied provenance (engine-independent).</summary>
public sealed class SqliteProvenanceTests : ProvenanceTests
{
    [Theory]
    [InlineData("meta", "Patient.meta.extension[1]")]
    [InlineData("resource", "Patient.extension[1]")]
    [InlineData("nested", "Patient.extension[0].extension[0]")]
    public async Task A_submitted_provenance_extension_is_refused_with_400_naming_where_it_is(string where, string location)
    {
        using var client = Client("epj-nord", "EPJ Nord", orgnrChild: null);
        var json = JsonNode.Parse(TestPatients.Json(TestPatients.NewFnr()))!;
        JsonNode Forged() => new JsonObject { ["url"] = ProvenanceExtensions.SourceClientId, ["valueString"] = "someone-else" };
        JsonNode Harmless() => new JsonObject { ["url"] = "http://example.org/fhir/StructureDefinition/colour", ["valueString"] = "blue" };
        switch (where)
        {
            case "meta":
                json["meta"] = new JsonObject { ["extension"] = new JsonArray(Harmless(), Forged()) };
                break;
            case "resource":
                json["extension"] = new JsonArray(Harmless(), Forged());
                break;
            default:
                json["extension"] = new JsonArray(new JsonObject { ["url"] = "http://example.org/fhir/StructureDefinition/wrapper", ["extension"] = new JsonArray(Forged()) });
                break;
        }

        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(json.ToJsonString()));
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var diagnostics = PitApi.AssertOutcome(body, "business-rule");
        Assert.Contains(ProvenanceExtensions.SourceClientId, diagnostics, StringComparison.Ordinal);
        Assert.Equal(location, (string?)Assert.Single(body["issue"]!.AsArray())!["expression"]![0]);
    }

    [Fact]
    public async Task Other_client_extensions_in_meta_are_still_dropped_and_the_server_writes_only_its_own()
    {
        using var client = Client("epj-nord", "EPJ Nord", orgnrChild: null);
        var json = JsonNode.Parse(TestPatients.Json(TestPatients.NewFnr()))!;
        json["meta"] = new JsonObject { ["extension"] = new JsonArray(new JsonObject { ["url"] = "http://example.org/x", ["valueString"] = "y" }) };

        var patient = await client.SubmitAndReadAsync(json.ToJsonString());

        Assert.Equal("epj-nord", Provenance(patient)[ProvenanceExtensions.SourceClientId]);
        Assert.DoesNotContain("http://example.org/x", patient.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_CapabilityStatement_and_the_OpenAPI_document_describe_the_provenance_extensions()
    {
        using var anonymous = Server.CreateAnonymousClient();

        var statement = await anonymous.GetJsonAsync("v1/metadata", HttpStatusCode.OK);
        var openApi = await anonymous.GetStringAsync("openapi/v1.json");

        var patient = statement["rest"]![0]!["resource"]!.AsArray().Single(r => (string?)r!["type"] == "Patient")!;
        Assert.All(ProvenanceExtensions.All, url => Assert.Contains(url, (string?)patient["documentation"], StringComparison.Ordinal));
        Assert.All(ProvenanceExtensions.All, url => Assert.Contains(url, openApi, StringComparison.Ordinal));
    }

    private protected override Task<Dictionary<string, string?>> SettingsAsync() => Task.FromResult(new Dictionary<string, string?>());
}

/// <summary>Provenance on the PostgreSQL engine.</summary>
public sealed class PostgresProvenanceTests(PostgresServer postgres) : ProvenanceTests, IClassFixture<PostgresServer>
{
    private protected override async Task<Dictionary<string, string?>> SettingsAsync() => new()
    {
        ["Pit:Storage:Provider"] = "Postgres",
        ["Pit:Storage:ConnectionString"] = await postgres.CreateDatabaseAsync(),
    };
}
