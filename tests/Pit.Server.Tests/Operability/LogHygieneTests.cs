using System.Net;
using System.Text;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Operability;

/// <summary>Logs never hold what they must not: identity numbers, names from resources, access tokens, DPoP proofs.</summary>
public sealed class LogHygieneTests
{
    private const string Family = "Hemmeligsen";
    private const string Given = "Skjultine";
    private const string FloodClient = "pit-flood-client";

    private readonly List<string> _identityNumbers = [];

    [Fact]
    public async Task No_log_line_on_any_success_or_error_path_holds_an_identity_number_a_name_a_token_or_a_proof()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                [$"Pit:RateLimiting:Clients:{FloodClient}:Burst"] = "1",
                [$"Pit:RateLimiting:Clients:{FloodClient}:PermitsPerSecond"] = "0.001",
            },
            configure: b =>
            {
                logs.AddTo(b);
                b.Services.DecorateStore<ISubmissionQueueStore>(store => new FailingQueueStore(store) { WritesToFail = 1 });
                b.Services.DecorateStore<IPatientFeedStore>(store => new FailingFeedStore(store));
            });
        var credentials = new CredentialRecorder(server);
        using var client = credentials.Client();

        // 503 (the store's first write fails), then the good paths; reading one Patient is the 500 path.
        await Expect(HttpStatusCode.ServiceUnavailable, client.PostAsync("v1/Patient", Body(Patient())));
        using var accepted = await client.PostAsync("v1/Patient", Body(Patient()));
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var (_, _, location) = await client.WaitProcessedAsync(accepted.Content.Headers.ContentLocation!);
        await Expect(HttpStatusCode.OK, client.GetAsync("v1/Patient"));
        await Expect(HttpStatusCode.InternalServerError, client.GetAsync(location));
        await Expect(HttpStatusCode.BadRequest, client.GetAsync($"v1/Patient?identifier={NewIdentityNumber()}"));
        await Expect(HttpStatusCode.InternalServerError, client.GetAsync($"v1/Patient/{NewIdentityNumber()}"));
        await Expect(HttpStatusCode.NotFound, client.GetAsync($"v1/submissions/{NewIdentityNumber()}"));

        // Bad bodies, each carrying an identity number and the names.
        await Expect(HttpStatusCode.BadRequest, client.PostAsync("v1/Patient", Body(Patient()[..^5])));
        await Expect(HttpStatusCode.BadRequest, client.PostAsync("v1/Patient", Body(Patient().Replace("\"Patient\"", "\"Observation\"", StringComparison.Ordinal))));
        await Expect(HttpStatusCode.BadRequest, client.PostAsync("v1/Patient", Body(Patient(fnr: Remember("12345678901")))));
        await Expect(HttpStatusCode.BadRequest, client.PostAsync("v1/Patient", Body(Patient().Replace("\"gender\"", $"\"x{NewIdentityNumber()}\"", StringComparison.Ordinal))));
        await Expect(HttpStatusCode.RequestEntityTooLarge, client.PostAsync("v1/Patient", Body(Patient().Replace(Family, Family + new string('a', 1_000_000), StringComparison.Ordinal))));
        await Expect(HttpStatusCode.UnsupportedMediaType, client.PostAsync("v1/Patient", new StringContent(Patient(), Encoding.UTF8, "text/plain")));

        await DriveAuthFailuresAsync(server, credentials);

        using var flood = credentials.Client(FloodClient);
        await Expect(HttpStatusCode.OK, flood.GetAsync("v1/Patient"));
        await Expect(HttpStatusCode.TooManyRequests, flood.PostAsync("v1/Patient", Body(Patient())));

        var text = logs.AllText();
        Assert.NotEmpty(logs.Entries);
        Assert.Contains("Unexpected failure", text, StringComparison.Ordinal);
        foreach (var fnr in _identityNumbers)
        {
            Assert.DoesNotContain(fnr, text, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(Family, text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(Given, text, StringComparison.OrdinalIgnoreCase);
        Assert.True(credentials.Secrets.Count > 20, "Tokens and proofs were sent.");
        foreach (var secret in credentials.Secrets)
        {
            // A token or proof is a JWS: neither the whole nor its payload or signature may appear.
            var parts = secret.Split('.');
            foreach (var part in parts.Skip(1).Where(p => p.Length >= 16).Append(secret))
            {
                Assert.False(text.Contains(part, StringComparison.Ordinal), $"A token or proof (part) was logged: {part[..12]}...");
            }
        }
    }

    private async Task DriveAuthFailuresAsync(TestServer server, CredentialRecorder credentials)
    {
        using var http = server.CreateAnonymousClient();
        using var key = DpopKey.CreateEcP256();
        var url = new Uri(server.BaseAddress, "v1/Patient");
        var valid = credentials.Token(key);
        string Proof(string? token, DpopProofOptions? options = null, Uri? at = null) =>
            credentials.Remember(key.CreateProof(HttpMethod.Post, at ?? url, token, options: options));

        async Task Send(HttpStatusCode expected, string[] authorization, params string[] proofs)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = Body(Patient()) };
            foreach (var value in authorization)
            {
                request.Headers.TryAddWithoutValidation("Authorization", value);
            }

            foreach (var proof in proofs)
            {
                request.Headers.TryAddWithoutValidation("DPoP", proof);
            }

            await Expect(expected, http.SendAsync(request));
        }

        var replayed = Proof(valid);
        await Send(HttpStatusCode.Accepted, ["DPoP " + valid], replayed);
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], replayed);
        await Send(HttpStatusCode.Unauthorized, []);
        await Send(HttpStatusCode.Unauthorized, ["Bearer " + valid]);
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid]);
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid, "DPoP " + valid], Proof(valid));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], Remember("not-a-proof." + NewIdentityNumber()));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], Proof(valid), Proof(valid));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], Proof(valid, new DpopProofOptions { CorruptSignature = true }));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], Proof(valid, at: new Uri("http://elsewhere.example/v1/Patient")));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + valid], Proof(null));

        foreach (var spec in new[]
        {
            new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddHours(-2) },
            new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddHours(2) },
            new AccessTokenSpec { Audience = "someone-else" },
            new AccessTokenSpec { Issuer = "https://issuer.example" },
            new AccessTokenSpec { TokenType = "dpop+jwt" },
        })
        {
            var token = credentials.Token(key, spec);
            await Send(HttpStatusCode.Unauthorized, ["DPoP " + token], Proof(token));
        }

        var unbound = credentials.Remember(server.TokenMinter.Mint(new AccessTokenSpec()));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + unbound], Proof(unbound));
        var forged = credentials.Remember(valid[..^4] + (valid.EndsWith("AAAA", StringComparison.Ordinal) ? "BBBB" : "AAAA"));
        await Send(HttpStatusCode.Unauthorized, ["DPoP " + forged], Proof(forged));
        var readOnly = credentials.Token(key, new AccessTokenSpec { Scopes = [AccessTokenMinter.ReadScope] });
        await Send(HttpStatusCode.Forbidden, ["DPoP " + readOnly], Proof(readOnly));
        var noOrganisation = credentials.Token(key, new AccessTokenSpec { OrgnrParent = null });
        await Send(HttpStatusCode.Forbidden, ["DPoP " + noOrganisation], Proof(noOrganisation));
    }

    private static async Task Expect(HttpStatusCode expected, Task<HttpResponseMessage> send)
    {
        using var response = await send;
        Assert.True(response.StatusCode == expected,
            $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    private static StringContent Body(string json) => TestPatients.Content(json);

    private string Patient(string? fnr = null) => TestPatients.Json(fnr ?? NewIdentityNumber(), Family, Given);

    private string NewIdentityNumber() => Remember(TestPatients.NewFnr());

    private string Remember(string fnr)
    {
        _identityNumbers.Add(fnr);
        return fnr;
    }
}
