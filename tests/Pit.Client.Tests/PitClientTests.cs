using System.Net;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class PitClientTests
{
    private const string Api = "https://pit.example/";

    [Fact]
    public async Task Requests_carry_the_DPoP_token_and_a_proof_bound_to_it()
    {
        var stub = Server((request, _) => Bundle(request, [], next: null));
        using var client = Create(stub);

        await client.SearchPagesAsync(new PatientSearch { Count = 10 }).ToListAsync();

        var call = stub.Seen.Single(r => r.Url.Host == "pit.example");
        Assert.Equal("DPoP access-1", call.Authorization);
        var proof = new JsonWebToken(call.Dpop);
        Assert.Equal(DpopProofFactory.AccessTokenHash("access-1"), proof.GetPayloadValue<string>("ath"));
        Assert.Equal("https://pit.example/v1/Patient", proof.GetPayloadValue<string>("htu"));
        Assert.Equal("_count=10", call.Url.Query.TrimStart('?'));
    }

    [Fact]
    public async Task A_use_dpop_nonce_challenge_is_answered_once_with_the_servers_nonce()
    {
        var stub = Server((request, _) =>
        {
            var proof = new JsonWebToken(request.Dpop);
            if (!proof.TryGetPayloadValue<string>("nonce", out var nonce) || nonce != "api-nonce")
            {
                var challenge = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                challenge.Headers.TryAddWithoutValidation("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\"");
                challenge.Headers.Add("DPoP-Nonce", "api-nonce");
                return challenge;
            }

            return Bundle(request, [], next: null);
        });
        using var client = Create(stub);

        await client.SearchPagesAsync().ToListAsync();
        await client.SearchPagesAsync().ToListAsync(); // the nonce is remembered: no second challenge

        var calls = stub.Seen.Where(r => r.Url.Host == "pit.example").ToList();
        Assert.Equal(3, calls.Count);
        Assert.NotEqual(new JsonWebToken(calls[0].Dpop).GetPayloadValue<string>("jti"), new JsonWebToken(calls[1].Dpop).GetPayloadValue<string>("jti"));
        Assert.Equal("api-nonce", new JsonWebToken(calls[2].Dpop).GetPayloadValue<string>("nonce"));
    }

    [Fact]
    public async Task A_second_nonce_challenge_is_not_retried_forever()
    {
        var stub = Server((request, _) =>
        {
            var challenge = new HttpResponseMessage(HttpStatusCode.Unauthorized);
            challenge.Headers.TryAddWithoutValidation("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"");
            challenge.Headers.Add("DPoP-Nonce", Guid.NewGuid().ToString());
            return challenge;
        });
        using var client = Create(stub);

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.ReadPatientAsync("x"));

        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("use_dpop_nonce", error.AuthenticateChallenge, StringComparison.Ordinal);
        Assert.Equal(2, stub.Seen.Count(r => r.Url.Host == "pit.example"));
    }

    [Fact]
    public async Task Search_follows_next_links_and_keeps_lastUpdated_at_full_precision()
    {
        var stub = Server((request, _) => request.Url.Query.Contains("cursor=", StringComparison.Ordinal)
            ? Bundle(request, [("b", "2026-11-25T10:00:00.1234560+00:00")], next: null)
            : Bundle(request, [("a", "2026-11-25T09:00:00.100000Z")], next: "https://pit.example/v1/Patient?cursor=opaque%2Btoken"));
        using var client = Create(stub);

        var pages = await client.SearchPagesAsync(new PatientSearch { Sort = PatientSort.LastUpdatedAscending }).ToListAsync();
        var patients = await client.SearchAsync().ToListAsync();

        Assert.Equal(2, pages.Count);
        Assert.Equal("2026-11-25T09:00:00.100000Z", pages[0].LastUpdated);
        Assert.Equal("2026-11-25T10:00:00.1234560+00:00", pages[1].LastUpdated);
        Assert.Equal(["a", "b"], patients.Select(p => p.Id));
        var cursorCall = stub.Seen.First(r => r.Url.Query.Contains("cursor", StringComparison.Ordinal));
        Assert.Equal("https://pit.example/v1/Patient", new JsonWebToken(cursorCall.Dpop).GetPayloadValue<string>("htu"));
    }

    [Fact]
    public async Task Submit_returns_the_status_url_and_status_is_read_from_it()
    {
        var stub = Server((request, _) =>
        {
            if (request.Method == HttpMethod.Post)
            {
                var accepted = new HttpResponseMessage(HttpStatusCode.Accepted) { Content = new StringContent("") };
                accepted.Content.Headers.ContentLocation = new Uri("/v1/_submission/42", UriKind.Relative);
                return accepted;
            }

            return StubHttpHandler.Json(HttpStatusCode.OK,
                """{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"Processed as Patient/p-7"}]}""", "application/fhir+json");
        });
        using var client = Create(stub);

        var statusUrl = await client.SubmitPatientJsonAsync("""{"resourceType":"Patient"}""");
        var status = await client.GetSubmissionStatusAsync(statusUrl);

        Assert.Equal(new Uri("https://pit.example/v1/_submission/42"), statusUrl);
        Assert.Equal(SubmissionState.Completed, status.State);
        Assert.Equal("p-7", status.PatientId);
    }

    [Fact]
    public async Task Errors_carry_the_status_and_the_servers_OperationOutcome()
    {
        var stub = Server((request, _) => StubHttpHandler.Json(HttpStatusCode.BadRequest,
            """{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Invalid fødselsnummer","expression":["Patient.identifier[0].value"]}]}""",
            "application/fhir+json"));
        using var client = Create(stub);

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.SubmitPatientJsonAsync("{}"));

        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.NotNull(error.Outcome);
        Assert.Equal("error [invalid] Invalid fødselsnummer (at Patient.identifier[0].value)", Assert.Single(error.IssueLines));
    }

    [Theory]
    [InlineData(HttpStatusCode.TooManyRequests)]
    [InlineData(HttpStatusCode.ServiceUnavailable)]
    public async Task Throttling_is_retried_after_the_servers_Retry_After_with_a_fresh_proof(HttpStatusCode status)
    {
        var stub = Server((request, index) =>
        {
            if (index < 3)
            {
                var busy = new HttpResponseMessage(status);
                busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
                return busy;
            }

            return Bundle(request, [], next: null);
        });
        using var client = Create(stub);

        await client.SearchPagesAsync().ToListAsync();

        var calls = stub.Seen.Where(r => r.Url.Host == "pit.example").ToList();
        Assert.Equal(2, calls.Count);
        Assert.NotEqual(new JsonWebToken(calls[0].Dpop).GetPayloadValue<string>("jti"), new JsonWebToken(calls[1].Dpop).GetPayloadValue<string>("jti"));
    }

    [Fact]
    public async Task Other_server_errors_are_not_retried()
    {
        var stub = Server((request, _) => StubHttpHandler.Json(HttpStatusCode.InternalServerError,
            """{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Unexpected failure; correlation id 42."}]}""",
            "application/fhir+json"));
        using var client = Create(stub);

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.SubmitPatientJsonAsync("{}"));

        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Single(stub.Seen, r => r.Url.Host == "pit.example");
    }

    private static PitClient Create(StubHttpHandler stub) => PitClient.Create(new PitClientOptions
    {
        BaseAddress = new Uri(Api),
        HelseId = HelseIdTokenClientTests.Options(ClientSigningKey.FromJwk(TestKeys.EcPrivateJwk()), TimeProvider.System),
        PrimaryHandler = stub,
        RetryDelay = TimeSpan.Zero,
    });

    /// <summary>HelseID look-alike plus a PIT endpoint answered by <paramref name="pit"/> (index counts all requests).</summary>
    private static StubHttpHandler Server(Func<SeenRequest, int, HttpResponseMessage> pit)
    {
        var helseId = HelseIdTokenClientTests.HelseIdStub(requireNonce: false);
        return new StubHttpHandler((request, index) => request.Url.Host == "pit.example"
            ? pit(request, index)
            : FakePitServer.Forward(helseId, request));
    }

    private static HttpResponseMessage Bundle(SeenRequest request, (string Id, string LastUpdated)[] patients, string? next)
    {
        var entries = string.Join(',', patients.Select(p =>
            $$$"""{"fullUrl":"https://pit.example/v1/Patient/{{{p.Id}}}","resource":{"resourceType":"Patient","id":"{{{p.Id}}}","meta":{"versionId":"1","lastUpdated":"{{{p.LastUpdated}}}"}},"search":{"mode":"match"}}"""));
        var links = $$"""{"relation":"self","url":"{{request.Url}}"}""" + (next is null ? "" : $$""",{"relation":"next","url":"{{next}}"}""");
        return StubHttpHandler.Json(HttpStatusCode.OK, $$"""{"resourceType":"Bundle","type":"searchset","link":[{{links}}],"entry":[{{entries}}]}""", "application/fhir+json");
    }
}
