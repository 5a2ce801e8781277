using System.Text.Json;
using System.Text.Json.Nodes;
using Pit.Client.Tests.Infrastructure;
using Pit.HelseIdStandIn;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Client.Tests;

/// <summary>
/// <c>pit --org/--child-org</c> and Pit.Client as a supplier's multi-tenant HelseID client and as a single-tenant
/// client's sub-unit, end to end against the real server and the stand-in's organisation checks.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class MultiTenantTests : IAsyncLifetime
{
    private const string SaasClient = StandInTenancyScenario.SaasClient;
    private const string ClinicClient = StandInTenancyScenario.ClinicClient;
    private const string Supplier = StandInTenancyScenario.Supplier;
    private const string CustomerA = StandInTenancyScenario.CustomerA;
    private const string CustomerB = StandInTenancyScenario.CustomerB;
    private const string CustomerBChild = StandInTenancyScenario.CustomerBChild;
    private const string Clinic = StandInTenancyScenario.Clinic;
    private const string ClinicChild = StandInTenancyScenario.ClinicChild;
    private const string Stranger = StandInTenancyScenario.Stranger;
    private const string Extension = "https://pit.nhn.no/fhir/StructureDefinition/";

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("pit-tenant-");
    private readonly string _saasKey = TestKeys.RsaPrivateJwk();
    private readonly string _clinicKey = TestKeys.RsaPrivateJwk();
    private TestServer _server = null!;

    public async Task InitializeAsync()
    {
        File.WriteAllText(Path.Combine(_folder.FullName, "saas.jwk.json"), _saasKey);
        File.WriteAllText(Path.Combine(_folder.FullName, "clinic.jwk.json"), _clinicKey);
        _server = await TestServer.StartAsync(StandInTenancyScenario.Settings(PublicJwk(_saasKey), PublicJwk(_clinicKey)));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task A_multi_tenant_client_submits_as_two_customers_and_each_customer_sees_only_its_own_Patients_naming_the_customer_and_the_suppliers_client()
    {
        var onePatient = Directory.CreateDirectory(Path.Combine(_folder.FullName, "one")).FullName;
        File.Copy(Path.Combine(RealPit.ExamplesFolder(), "magnus-strand.json"), Path.Combine(onePatient, "magnus-strand.json"));

        var submitA = await SaasPit("--org", CustomerA, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        var submitB = await SaasPit("--org", CustomerB, "--child-org", CustomerBChild, "submit", onePatient, "--wait");
        var seenByA = await SaasPit("--org", CustomerA, "search", "--ndjson");
        var seenByB = await SaasPit("--org", CustomerB, "search", "--ndjson");

        Assert.True(submitA.ExitCode == 0, submitA.ToString());
        Assert.True(submitB.ExitCode == 0, submitB.ToString());
        var a = Patients(seenByA);
        var b = Patients(seenByB);
        Assert.Equal(6, a.Count);
        Assert.All(a, p => Assert.Equal(CustomerA, OrganisationTag(p)));
        var onlyB = Assert.Single(b);
        Assert.Equal(CustomerB, OrganisationTag(onlyB));
        Assert.DoesNotContain(a, p => (string?)p["id"] == (string?)onlyB["id"]);

        // Provenance: the acting customer (and its sub-unit) as the organisation, the supplier's client as the sender.
        Assert.All(a, p =>
        {
            var provenance = Provenance(p);
            Assert.Equal(CustomerA, provenance[Extension + "parent-organization-number"]);
            Assert.False(provenance.ContainsKey(Extension + "child-organization-number"));
            Assert.Equal(SaasClient, provenance[Extension + "source-client-id"]);
            Assert.Equal("PIT SaaS test client", provenance[Extension + "source-client-name"]);
        });
        Assert.Equal(6, a.Select(p => Provenance(p)[Extension + "submission-id"]).Distinct().Count());
        var ofB = Provenance(onlyB);
        Assert.Equal(CustomerB, ofB[Extension + "parent-organization-number"]);
        Assert.Equal(CustomerBChild, ofB[Extension + "child-organization-number"]);
        Assert.Equal(SaasClient, ofB[Extension + "source-client-id"]);
    }

    [Fact]
    public async Task Through_the_library_a_customer_cannot_read_another_customers_Patient()
    {
        using var forA = PitClient.Create(Options(SaasClient, _saasKey, CustomerA));
        using var forB = PitClient.Create(Options(SaasClient, _saasKey, CustomerB));
        var status = await forA.WaitForSubmissionAsync(
            await forA.SubmitPatientJsonAsync(await File.ReadAllTextAsync(Path.Combine(RealPit.ExamplesFolder(), "magnus-strand.json"))),
            TimeSpan.FromMilliseconds(50));
        var id = status.PatientId!;

        var read = await forA.ReadPatientJsonAsync(id);
        var refused = await Assert.ThrowsAsync<PitApiException>(() => forB.ReadPatientJsonAsync(id));

        Assert.Contains(CustomerA, read, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Empty(await forB.SearchAsync().ToListAsync());
    }

    [Fact]
    public async Task Pit_token_shows_the_customer_the_supplier_and_the_tenancy()
    {
        var run = await SaasPit("--org", CustomerB, "--child-org", CustomerBChild, "token");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"\"helseid://claims/client/claims/orgnr_parent\": \"{CustomerB}\"", run.Out, StringComparison.Ordinal);
        Assert.Contains($"\"helseid://claims/client/claims/orgnr_child\": \"{CustomerBChild}\"", run.Out, StringComparison.Ordinal);
        Assert.Contains($"\"helseid://claims/client/claims/orgnr_supplier\": \"{Supplier}\"", run.Out, StringComparison.Ordinal);
        Assert.Contains("\"helseid://claims/client/client_tenancy\": \"multi-tenant\"", run.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pit_for_an_organisation_that_did_not_delegate_is_refused_by_the_stand_in_with_exit_code_4()
    {
        var run = await SaasPit("--org", Stranger, "search");

        Assert.True(run.ExitCode == 4, run.ToString());
        Assert.Contains("unauthorized_client", run.Error, StringComparison.Ordinal);
        Assert.Contains(Stranger, run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pit_as_a_multi_tenant_client_without_org_is_refused_naming_authorization_details()
    {
        var run = await SaasPit("search");

        Assert.True(run.ExitCode == 4, run.ToString());
        Assert.Contains("invalid_request", run.Error, StringComparison.Ordinal);
        Assert.Contains("authorization_details", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_single_tenant_client_acts_for_its_sub_unit_with_child_org_alone()
    {
        var token = await ClinicPit("--child-org", ClinicChild, "token");
        var submit = await ClinicPit("--child-org", ClinicChild, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        var search = await ClinicPit("search", "--ndjson");
        var stranger = await ClinicPit("--child-org", Stranger, "search");

        Assert.True(token.ExitCode == 0, token.ToString());
        Assert.Contains($"\"helseid://claims/client/claims/orgnr_parent\": \"{Clinic}\"", token.Out, StringComparison.Ordinal);
        Assert.Contains($"\"helseid://claims/client/claims/orgnr_child\": \"{ClinicChild}\"", token.Out, StringComparison.Ordinal);
        Assert.Contains("\"helseid://claims/client/client_tenancy\": \"single-tenant\"", token.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("orgnr_supplier", token.Out, StringComparison.Ordinal);
        Assert.True(submit.ExitCode == 0, submit.ToString());
        // The tenant is the legal entity: the whole clinic sees what its sub-unit submitted.
        Assert.All(Patients(search), p => Assert.Equal(Clinic, OrganisationTag(p)));
        Assert.Equal(6, Patients(search).Count);
        Assert.True(stranger.ExitCode == 4, stranger.ToString());
        Assert.Contains("unauthorized_client", stranger.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_development_multi_tenant_client_acts_for_its_example_customers_with_the_development_key()
    {
        var dev = new[] { "--base-url", _server.BaseAddress.AbsoluteUri, "--authority", RealPit.Authority(_server).AbsoluteUri, "--client-id", "pit-dev-saas-client" };

        var customer = await CliRun.RunAsync(RealPit.RepositoryRoot(), ["--dev", .. dev, "--org", "940000009", "--child-org", "930000000", "token"]);
        var other = await CliRun.RunAsync(RealPit.RepositoryRoot(), ["--dev", .. dev, "--org", Stranger, "token"]);

        Assert.True(customer.ExitCode == 0, customer.ToString());
        Assert.Contains("\"helseid://claims/client/claims/orgnr_parent\": \"940000009\"", customer.Out, StringComparison.Ordinal);
        Assert.True(other.ExitCode == 4, other.ToString());
    }

    [Theory]
    [InlineData("--org", "92000000")]
    [InlineData("--child-org", "NO:ORGNR:920000002")]
    public async Task An_organisation_number_that_is_not_9_digits_is_a_usage_error(string flag, string value)
    {
        var run = await SaasPit(flag, value, "search");

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.Contains("not 9 digits", run.Error, StringComparison.Ordinal);
    }

    private Task<CliRun> SaasPit(params string[] args) => Pit(SaasClient, "saas.jwk.json", args);

    private Task<CliRun> ClinicPit(params string[] args) => Pit(ClinicClient, "clinic.jwk.json", args);

    private Task<CliRun> Pit(string clientId, string keyFile, string[] args) => CliRun.RunAsync(_folder.FullName,
        ["--base-url", _server.BaseAddress.AbsoluteUri, "--authority", RealPit.Authority(_server).AbsoluteUri, "--client-id", clientId, "--key-file", keyFile, .. args]);

    private PitClientOptions Options(string clientId, string privateJwk, string organisation) => new()
    {
        BaseAddress = _server.BaseAddress,
        HelseId = new HelseIdClientOptions
        {
            Authority = RealPit.Authority(_server),
            ClientId = clientId,
            ClientKey = ClientSigningKey.FromJwk(privateJwk),
            OrganisationNumber = organisation,
        },
    };

    private static List<JsonNode> Patients(CliRun run) =>
        [.. run.Out.Split('\n').Where(l => l.StartsWith('{')).Select(l => JsonNode.Parse(l)!)];

    private static Dictionary<string, string> Provenance(JsonNode patient) =>
        patient["meta"]!["extension"]!.AsArray().ToDictionary(e => (string)e!["url"]!, e => (string)e!["valueString"]!);

    private static string? OrganisationTag(JsonNode patient) =>
        (string?)patient["meta"]!["tag"]!.AsArray().Single(t => (string?)t!["system"] == "urn:oid:2.16.578.1.12.4.1.4.101")!["code"];

    private static Dictionary<string, string> PublicJwk(string privateJwk)
    {
        var all = JsonSerializer.Deserialize<Dictionary<string, string>>(privateJwk)!;
        return new Dictionary<string, string> { ["kty"] = all["kty"], ["n"] = all["n"], ["e"] = all["e"] };
    }
}
