using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Pit.Server.Auth;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>Scopes per method, the orgnr_parent rule, and the caller identity handed to the endpoints.</summary>
public sealed class AuthorisationTests : IAsyncLifetime
{
    private readonly CallerSink _callers = new();
    private TestServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await TestServer.StartAsync(configure: builder => builder.Services.AddSingleton<IAuthorizationHandler>(_callers));

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Read_scope_allows_GET()
    {
        using var client = _server.CreateClient(scopes: [AccessTokenMinter.ReadScope]);
        using var response = await client.GetAsync("v1/Patient");
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task Write_scope_allows_POST()
    {
        using var client = _server.CreateClient(scopes: [AccessTokenMinter.WriteScope]);
        using var response = await client.PostAsync("v1/Patient", Patient());
        AuthAssert.PassedAuthentication(response);
    }

    [Fact]
    public async Task GET_without_read_scope_is_forbidden_with_insufficient_scope()
    {
        using var client = _server.CreateClient(scopes: [AccessTokenMinter.WriteScope]);
        using var response = await client.GetAsync("v1/Patient");
        await AssertInsufficientScopeAsync(response, AccessTokenMinter.ReadScope);
    }

    [Fact]
    public async Task POST_without_write_scope_is_forbidden_with_insufficient_scope()
    {
        using var client = _server.CreateClient(scopes: [AccessTokenMinter.ReadScope]);
        using var response = await client.PostAsync("v1/Patient", Patient());
        await AssertInsufficientScopeAsync(response, AccessTokenMinter.WriteScope);
    }

    [Fact]
    public async Task Read_by_id_without_read_scope_is_forbidden()
    {
        using var client = _server.CreateClient(scopes: ["nhn:other/api.read"]);
        using var response = await client.GetAsync("v1/Patient/abc");
        await AssertInsufficientScopeAsync(response, AccessTokenMinter.ReadScope);
    }

    [Theory]
    [InlineData("974762502")]
    [InlineData("97476250")]
    [InlineData("9747625011")]
    [InlineData("97476250a")]
    [InlineData("")]
    public async Task Invalid_orgnr_parent_is_forbidden_naming_the_claim(string organisation)
    {
        using var client = _server.CreateClient(organisation);
        using var response = await client.GetAsync("v1/Patient");
        await AuthAssert.ForbiddenAsync(response, HelseIdClaims.OrgnrParent);
    }

    [Fact]
    public async Task Missing_orgnr_parent_is_forbidden_naming_the_claim()
    {
        using var key = DpopKey.CreateEcP256();
        var token = _server.TokenMinter.Mint(new AccessTokenSpec { Jkt = key.Thumbprint, OrgnrParent = null });
        using var client = new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = _server.BaseAddress };
        using var response = await client.GetAsync("v1/Patient");
        await AuthAssert.ForbiddenAsync(response, HelseIdClaims.OrgnrParent);
    }

    [Fact]
    public async Task Endpoints_see_client_id_and_organisation_claims_under_HelseID_names()
    {
        using var client = _server.CreateClient(TestServer.OtherOrganisation, orgnrChild: "987654325");
        using var response = await client.GetAsync("v1/Patient");
        AuthAssert.PassedAuthentication(response);

        var caller = Assert.Single(_callers.Callers, c => c.Organisation == TestServer.OtherOrganisation);
        Assert.Equal("pit-test-client", caller.ClientId);
        Assert.Equal("987654325", caller.OrgnrChild);
        Assert.False(caller.ReadsAllOrganisations);
    }

    [Fact]
    public async Task Endpoints_see_a_multi_tenant_callers_client_name_and_supplier_while_the_tenant_stays_orgnr_parent()
    {
        using var response = await GetWithTokenAsync(new AccessTokenSpec
        {
            ClientId = "pit-saas-client",
            ClientName = "PIT SaaS test client",
            OrgnrParent = TestServer.OtherOrganisation,
            OrgnrChild = "987654325",
            ExtraClaims = new Dictionary<string, JsonNode?> { [HelseIdClaims.OrgnrSupplier] = TestServer.DefaultOrganisation },
        });
        AuthAssert.PassedAuthentication(response);

        var caller = Assert.Single(_callers.Callers, c => c.ClientId == "pit-saas-client");
        Assert.Equal(TestServer.OtherOrganisation, caller.Organisation);
        Assert.Equal(TestServer.OtherOrganisation, caller.ReadScope);
        Assert.Equal("987654325", caller.OrgnrChild);
        Assert.Equal(TestServer.DefaultOrganisation, caller.OrgnrSupplier);
        Assert.Equal("PIT SaaS test client", caller.ClientName);
    }

    [Theory]
    [InlineData(HelseIdClaims.OrgnrChild)]
    [InlineData(HelseIdClaims.OrgnrSupplier)]
    public async Task An_invalid_optional_organisation_claim_is_forbidden_naming_the_claim(string claim)
    {
        using var response = await GetWithTokenAsync(new AccessTokenSpec
        {
            ExtraClaims = new Dictionary<string, JsonNode?> { [claim] = "987654326" },
        });

        await AuthAssert.ForbiddenAsync(response, claim);
    }

    [Fact]
    public async Task Cross_organisation_readers_are_marked_from_configuration()
    {
        var callers = new CallerSink();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Access:CrossOrganisationReaders:0"] = TestServer.OtherOrganisation },
            configure: builder => builder.Services.AddSingleton<IAuthorizationHandler>(callers));
        using var client = server.CreateClient(TestServer.OtherOrganisation);
        using var response = await client.GetAsync("v1/Patient");
        AuthAssert.PassedAuthentication(response);
        Assert.True(Assert.Single(callers.Callers).ReadsAllOrganisations);
    }

    private async Task<HttpResponseMessage> GetWithTokenAsync(AccessTokenSpec spec)
    {
        using var key = DpopKey.CreateEcP256();
        var token = _server.TokenMinter.Mint(spec with { Jkt = key.Thumbprint });
        using var client = new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = _server.BaseAddress };
        return await client.GetAsync("v1/Patient");
    }

    private static async Task AssertInsufficientScopeAsync(HttpResponseMessage response, string scope)
    {
        await AuthAssert.ForbiddenAsync(response, scope);
        var challenge = AuthAssert.Challenge(response);
        Assert.StartsWith("DPoP ", challenge, StringComparison.Ordinal);
        Assert.Contains("error=\"insufficient_scope\"", challenge, StringComparison.Ordinal);
        Assert.Contains($"scope=\"{scope}\"", challenge, StringComparison.Ordinal);
    }

    private static StringContent Patient() => new("{\"resourceType\":\"Patient\"}", System.Text.Encoding.UTF8, "application/fhir+json");

    /// <summary>Records the caller the endpoints will see, the way they read it (<see cref="PitCaller.FromPrincipal"/>).</summary>
    private sealed class CallerSink : IAuthorizationHandler
    {
        public ConcurrentBag<PitCaller> Callers { get; } = [];

        public Task HandleAsync(AuthorizationHandlerContext context)
        {
            if (context.User.Identity?.IsAuthenticated == true && context.Resource is HttpContext http)
            {
                var options = http.RequestServices.GetRequiredService<IOptions<AccessOptions>>().Value;
                if (PitCaller.FromPrincipal(context.User, options) is { } caller)
                {
                    Callers.Add(caller);
                }
            }

            return Task.CompletedTask;
        }
    }
}
