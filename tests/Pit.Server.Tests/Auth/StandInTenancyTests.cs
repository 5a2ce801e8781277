using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.HelseIdStandIn;
using Pit.Server.Auth;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>
/// The stand-in's organisation handling: HelseID's <c>authorization_details</c> for multi-tenant clients and the
/// single-tenant sub-unit form, checked against what each client is registered to serve.
/// </summary>
public sealed class StandInTenancyTests(StandInTenancyFixture fixture) : IClassFixture<StandInTenancyFixture>
{
    private const string Iso6523 = "urn:oid:1.0.6523";
    private const string ChildUnit = "urn:oid:2.16.578.1.12.4.1.2.101";

    private StandInIssuer StandIn => fixture.Server.Services.GetRequiredService<StandInIssuer>();

    [Fact]
    public async Task Multi_tenant_client_gets_a_token_for_a_customer_naming_customer_supplier_and_tenancy()
    {
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerA}"));

        Assert.True(status == HttpStatusCode.OK, body);
        var token = AccessToken(body);
        Assert.Equal(StandInTenancyFixture.CustomerA, token.GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
        Assert.Equal(StandInTenancyFixture.Supplier, token.GetPayloadValue<string>(HelseIdClaims.OrgnrSupplier));
        Assert.Equal("multi-tenant", token.GetPayloadValue<string>(StandInIssuer.ClientTenancyClaim));
        Assert.False(token.TryGetPayloadValue<string>(HelseIdClaims.OrgnrChild, out _));
    }

    [Fact]
    public async Task Multi_tenant_client_may_name_a_registered_sub_unit_of_its_customer()
    {
        var (status, body) = await RequestAsync(
            fixture.SaasKey, StandInTenancyFixture.SaasClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerB}:{StandInTenancyFixture.CustomerBChild}"));

        Assert.True(status == HttpStatusCode.OK, body);
        var token = AccessToken(body);
        Assert.Equal(StandInTenancyFixture.CustomerB, token.GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
        Assert.Equal(StandInTenancyFixture.CustomerBChild, token.GetPayloadValue<string>(HelseIdClaims.OrgnrChild));
    }

    [Fact]
    public async Task HelseIDs_single_object_form_of_authorization_details_is_accepted_too()
    {
        var details = Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerA}")[0]!.DeepClone();
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, details);

        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal(StandInTenancyFixture.CustomerA, AccessToken(body).GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
    }

    [Fact]
    public async Task Multi_tenant_request_for_an_organisation_that_did_not_delegate_is_refused_as_unauthorized_client()
    {
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.Stranger}"));

        AssertRefused(status, body, "unauthorized_client", StandInTenancyFixture.Stranger);
    }

    [Fact]
    public async Task Multi_tenant_request_for_an_unregistered_sub_unit_is_refused_as_unauthorized_client()
    {
        var (status, body) = await RequestAsync(
            fixture.SaasKey, StandInTenancyFixture.SaasClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerA}:{StandInTenancyFixture.CustomerBChild}"));

        AssertRefused(status, body, "unauthorized_client", StandInTenancyFixture.CustomerBChild);
    }

    [Fact]
    public async Task Multi_tenant_request_without_authorization_details_is_refused_as_invalid_request()
    {
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, details: null);

        AssertRefused(status, body, "invalid_request", "authorization_details");
    }

    [Theory]
    [InlineData(Iso6523, "974762501")]
    [InlineData(Iso6523, "NO:ORGNR:97476250")]
    [InlineData(Iso6523, "NO:ORGNR:920000002:930000000:940000009")]
    [InlineData("urn:oid:2.16.578.1.12.4.1.4.101", "NO:ORGNR:920000002")]
    [InlineData(ChildUnit, "930000000")]
    public async Task Multi_tenant_request_with_a_malformed_identifier_is_refused_as_invalid_request(string system, string value)
    {
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, Details(system, value));

        AssertRefused(status, body, "invalid_request", "identifier");
    }

    [Fact]
    public async Task Authorization_details_of_another_type_are_refused_as_invalid_request()
    {
        var details = Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerA}");
        details[0]!["type"] = "payment_initiation";
        var (status, body) = await RequestAsync(fixture.SaasKey, StandInTenancyFixture.SaasClient, details);

        AssertRefused(status, body, "invalid_request", "helseid_authorization");
    }

    [Fact]
    public async Task Single_tenant_client_names_a_registered_sub_unit_in_the_child_unit_form()
    {
        var (status, body) = await RequestAsync(fixture.ClinicKey, StandInTenancyFixture.ClinicClient, Details(ChildUnit, StandInTenancyFixture.ClinicChild));

        Assert.True(status == HttpStatusCode.OK, body);
        var token = AccessToken(body);
        Assert.Equal(StandInTenancyFixture.Clinic, token.GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
        Assert.Equal(StandInTenancyFixture.ClinicChild, token.GetPayloadValue<string>(HelseIdClaims.OrgnrChild));
        Assert.Equal("single-tenant", token.GetPayloadValue<string>(StandInIssuer.ClientTenancyClaim));
        Assert.False(token.TryGetPayloadValue<string>(HelseIdClaims.OrgnrSupplier, out _));
    }

    [Fact]
    public async Task Single_tenant_client_without_authorization_details_gets_its_own_organisation()
    {
        var (status, body) = await RequestAsync(fixture.ClinicKey, StandInTenancyFixture.ClinicClient, details: null);

        Assert.True(status == HttpStatusCode.OK, body);
        var token = AccessToken(body);
        Assert.Equal(StandInTenancyFixture.Clinic, token.GetPayloadValue<string>(HelseIdClaims.OrgnrParent));
        Assert.False(token.TryGetPayloadValue<string>(HelseIdClaims.OrgnrChild, out _));
        Assert.Equal("single-tenant", token.GetPayloadValue<string>(StandInIssuer.ClientTenancyClaim));
    }

    [Fact]
    public async Task Single_tenant_client_naming_an_unregistered_sub_unit_is_refused_as_unauthorized_client()
    {
        var (status, body) = await RequestAsync(fixture.ClinicKey, StandInTenancyFixture.ClinicClient, Details(ChildUnit, StandInTenancyFixture.Stranger));

        AssertRefused(status, body, "unauthorized_client", StandInTenancyFixture.Stranger);
    }

    [Fact]
    public async Task Single_tenant_client_asking_for_another_legal_entity_is_refused_as_unauthorized_client()
    {
        var (status, body) = await RequestAsync(fixture.ClinicKey, StandInTenancyFixture.ClinicClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.CustomerA}"));

        AssertRefused(status, body, "unauthorized_client", StandInTenancyFixture.CustomerA);
    }

    [Fact]
    public async Task Single_tenant_client_may_name_parent_and_sub_unit_in_the_ISO_6523_form()
    {
        var (status, body) = await RequestAsync(
            fixture.ClinicKey, StandInTenancyFixture.ClinicClient, Details(Iso6523, $"NO:ORGNR:{StandInTenancyFixture.Clinic}:{StandInTenancyFixture.ClinicChild}"));

        Assert.True(status == HttpStatusCode.OK, body);
        Assert.Equal(StandInTenancyFixture.ClinicChild, AccessToken(body).GetPayloadValue<string>(HelseIdClaims.OrgnrChild));
    }

    [Fact]
    public async Task Multi_tenant_client_registered_without_customers_stops_start_up()
    {
        var settings = StandInClientSettings.For(6, new StandInClientOptions
        {
            ClientId = "no-customers", Tenancy = StandInTenancy.MultiTenant, OrgnrSupplier = StandInTenancyFixture.Supplier, PublicJwk = fixture.SaasPublicJwk,
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(settings));

        Assert.Contains("Customers", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stand_in_client_with_an_invalid_organisation_number_stops_start_up()
    {
        var settings = StandInClientSettings.For(6, new StandInClientOptions
        {
            ClientId = "bad-orgnr", OrgnrParent = "974762502", PublicJwk = fixture.SaasPublicJwk,
        });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(settings));

        Assert.Contains("mod-11", error.Message, StringComparison.Ordinal);
    }

    private async Task<(HttpStatusCode Status, string Body)> RequestAsync(DpopKey clientKey, string clientId, JsonNode? details)
    {
        using var dpopKey = DpopKey.CreateEcP256();
        return await StandInTokenClient.SendAsync(
            new Uri(StandIn.TokenEndpoint), clientId, Assertion(clientKey, clientId, details), dpopKey, [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope]);
    }

    /// <summary>A client assertion as HelseID clients send it, with <paramref name="details"/> as authorization_details.</summary>
    private string Assertion(DpopKey key, string clientId, JsonNode? details)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var payload = new JsonObject
        {
            ["iss"] = clientId,
            ["sub"] = clientId,
            ["aud"] = StandIn.Issuer,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["iat"] = now,
            ["nbf"] = now,
            ["exp"] = now + 60,
        };
        if (details is not null)
        {
            payload["authorization_details"] = details;
        }

        return key.SignJwt(new JsonObject { ["alg"] = key.Algorithm, ["typ"] = "client-authentication+jwt" }, payload);
    }

    private static JsonArray Details(string system, string value) =>
    [
        new JsonObject
        {
            ["type"] = "helseid_authorization",
            ["practitioner_role"] = new JsonObject
            {
                ["organization"] = new JsonObject
                {
                    ["identifier"] = new JsonObject { ["system"] = system, ["type"] = "ENH", ["value"] = value },
                },
            },
        },
    ];

    private static JsonWebToken AccessToken(string body)
    {
        using var json = JsonDocument.Parse(body);
        return new JsonWebToken(json.RootElement.GetProperty("access_token").GetString());
    }

    private static void AssertRefused(HttpStatusCode status, string body, string error, string descriptionContains)
    {
        Assert.Equal(HttpStatusCode.BadRequest, status);
        using var json = JsonDocument.Parse(body);
        Assert.Equal(error, json.RootElement.GetProperty("error").GetString());
        Assert.Contains(descriptionContains, json.RootElement.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.False(json.RootElement.TryGetProperty("access_token", out _));
    }
}

/// <summary>
/// One server with a multi-tenant supplier client (two customers, one with a sub-unit) and a single-tenant client
/// with a registered sub-unit.
/// </summary>
public sealed class StandInTenancyFixture : IAsyncLifetime
{
    public const string SaasClient = StandInTenancyScenario.SaasClient;
    public const string ClinicClient = StandInTenancyScenario.ClinicClient;
    public const string Supplier = StandInTenancyScenario.Supplier;
    public const string CustomerA = StandInTenancyScenario.CustomerA;
    public const string CustomerB = StandInTenancyScenario.CustomerB;
    public const string CustomerBChild = StandInTenancyScenario.CustomerBChild;
    public const string Clinic = StandInTenancyScenario.Clinic;
    public const string ClinicChild = StandInTenancyScenario.ClinicChild;
    public const string Stranger = StandInTenancyScenario.Stranger;

    public DpopKey SaasKey { get; } = DpopKey.CreateRsa();

    public DpopKey ClinicKey { get; } = DpopKey.CreateEcP256();

    public Dictionary<string, string> SaasPublicJwk => PublicJwk(SaasKey);

    public TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = await TestServer.StartAsync(StandInTenancyScenario.Settings(SaasPublicJwk, PublicJwk(ClinicKey)));
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        SaasKey.Dispose();
        ClinicKey.Dispose();
    }

    private static Dictionary<string, string> PublicJwk(DpopKey key) =>
        key.PublicJwk.ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
}
