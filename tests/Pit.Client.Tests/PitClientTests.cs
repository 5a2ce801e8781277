using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests;

/// <summary>
/// Pit.Client against the real server on Kestrel loopback as the development client; a <see cref="RecordingHandler"/>
/// under the client shows what went over the wire.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class PitClientTests
{
    [Fact]
    public async Task Requests_carry_the_DPoP_token_and_a_proof_bound_to_it()
    {
        await using var server = await TestServer.StartAsync();
        using var traffic = new RecordingHandler();
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));

        await client.SearchPagesAsync(new PatientSearch { Count = 10 }).ToListAsync();

        var call = Assert.Single(PitCalls(traffic));
        Assert.StartsWith("DPoP ", call.Authorization, StringComparison.Ordinal);
        var token = call.Authorization![("DPoP ".Length)..];
        var proof = new JsonWebToken(call.Dpop);
        Assert.Equal(DpopProofFactory.AccessTokenHash(token), proof.GetPayloadValue<string>("ath"));
        Assert.Equal(new Uri(server.BaseAddress, "v1/Patient").AbsoluteUri, proof.GetPayloadValue<string>("htu"));
        Assert.Equal("_count=10", call.Url.Query.TrimStart('?'));
    }

    [Fact]
    public async Task A_use_dpop_nonce_challenge_is_answered_once_with_the_servers_nonce()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Auth:DPoP:RequireNonce"] = "true" });
        using var traffic = new RecordingHandler();
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));

        await client.SearchPagesAsync().ToListAsync();
        await client.SearchPagesAsync().ToListAsync(); // the nonce is remembered: no second challenge

        var calls = PitCalls(traffic);
        Assert.Equal(3, calls.Count);
        Assert.False(new JsonWebToken(calls[0].Dpop).TryGetPayloadValue<string>("nonce", out _));
        Assert.NotEqual(new JsonWebToken(calls[0].Dpop).GetPayloadValue<string>("jti"), new JsonWebToken(calls[1].Dpop).GetPayloadValue<string>("jti"));
        Assert.False(string.IsNullOrEmpty(new JsonWebToken(calls[1].Dpop).GetPayloadValue<string>("nonce")));
        Assert.False(string.IsNullOrEmpty(new JsonWebToken(calls[2].Dpop).GetPayloadValue<string>("nonce")));
    }

    [Fact]
    public async Task A_second_nonce_challenge_is_not_retried_forever()
    {
        await using var server = await TestServer.StartAsync();
        // Stubbed: the real server never challenges a proof that carries the nonce it just gave.
        using var traffic = new RecordingHandler((request, _) => IsPit(request) ? NonceChallenge() : null);
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.ReadPatientAsync("x"));

        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Contains("use_dpop_nonce", error.AuthenticateChallenge, StringComparison.Ordinal);
        Assert.Equal(2, PitCalls(traffic).Count);
    }

    [Fact]
    public async Task Search_follows_next_links_and_keeps_lastUpdated_at_full_precision()
    {
        await using var server = await TestServer.StartAsync();
        using var traffic = new RecordingHandler();
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));
        var submitted = await SubmitExamplesAsync(client, 3);

        var pages = await client.SearchPagesAsync(new PatientSearch { Count = 2, Sort = PatientSort.LastUpdatedAscending }).ToListAsync();
        var patients = await client.SearchAsync(new PatientSearch { Count = 2 }).ToListAsync();

        Assert.Equal(2, pages.Count);
        Assert.NotNull(pages[0].NextLink);
        Assert.Null(pages[1].NextLink);
        Assert.All(pages, page =>
        {
            var sent = JsonNode.Parse(page.Entries[^1].Json)!["meta"]!["lastUpdated"]!.GetValue<string>();
            Assert.Equal(sent, page.LastUpdated);
            Assert.Matches(@"\.\d{6}", page.LastUpdated);
        });
        Assert.Equal(submitted.Order(StringComparer.Ordinal), pages.SelectMany(p => p.Entries).Select(e => e.Id!).Order(StringComparer.Ordinal));
        Assert.Equal(submitted.Order(StringComparer.Ordinal), patients.Select(p => p.Id).Order(StringComparer.Ordinal));
        var cursorCall = PitCalls(traffic).First(r => r.Url.Query.Contains("cursor=", StringComparison.Ordinal));
        Assert.Equal(new Uri(server.BaseAddress, "v1/Patient").AbsoluteUri, new JsonWebToken(cursorCall.Dpop).GetPayloadValue<string>("htu"));
    }

    [Fact]
    public async Task Submit_returns_the_status_url_whose_status_names_the_patient_to_read_back()
    {
        await using var server = await TestServer.StartAsync();
        using var client = PitClient.Create(await RealPit.ClientOptions(server));
        var json = await File.ReadAllTextAsync(Path.Combine(RealPit.ExamplesFolder(), "ingrid-solberg.json"));

        var statusUrl = await client.SubmitPatientJsonAsync(json);
        var first = await client.GetSubmissionStatusAsync(statusUrl);
        var done = await client.WaitForSubmissionAsync(statusUrl, TimeSpan.FromMilliseconds(50));
        var patient = await client.ReadPatientAsync(done.PatientId!);

        Assert.StartsWith(new Uri(server.BaseAddress, "v1/submissions/").AbsoluteUri, statusUrl.AbsoluteUri, StringComparison.Ordinal);
        Assert.Contains(first.State, new[] { SubmissionState.Pending, SubmissionState.Completed });
        Assert.Equal(SubmissionState.Completed, done.State);
        Assert.Equal(done.PatientId, patient.Id);
        Assert.Equal("Solberg", patient.Name[0].Family);
    }

    [Fact]
    public async Task A_refused_patient_throws_with_the_status_and_the_servers_OperationOutcome()
    {
        await using var server = await TestServer.StartAsync();
        using var client = PitClient.Create(await RealPit.ClientOptions(server));

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.SubmitPatientJsonAsync("""{"resourceType":"Patient","name":[{"family":"Uten"}]}"""));

        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.NotNull(error.Outcome);
        var issue = Assert.Single(error.IssueLines);
        Assert.StartsWith("error [", issue, StringComparison.Ordinal);
        Assert.Contains("The Patient needs at least one identifier with a Norwegian person identifier system", issue, StringComparison.Ordinal);
        Assert.EndsWith("(at Patient.identifier)", issue, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reading_a_missing_patient_throws_404_with_the_servers_OperationOutcome()
    {
        await using var server = await TestServer.StartAsync();
        using var client = PitClient.Create(await RealPit.ClientOptions(server));

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.ReadPatientAsync("nobody"));

        Assert.Equal(HttpStatusCode.NotFound, error.StatusCode);
        Assert.NotNull(error.Outcome);
        Assert.Contains("not-found", Assert.Single(error.IssueLines), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Throttling_with_429_is_retried_after_the_servers_Retry_After_with_a_fresh_proof()
    {
        await using var server = await TestServer.StartAsync();
        // Stubbed once: the real server never answers 429; the retry then goes to it.
        var throttled = 0;
        using var traffic = new RecordingHandler((request, _) => IsPit(request) && Interlocked.Increment(ref throttled) == 1 ? TooManyRequests() : null);
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));

        var pages = await client.SearchPagesAsync().ToListAsync();

        Assert.Single(pages);
        var calls = PitCalls(traffic);
        Assert.Equal(2, calls.Count);
        Assert.NotEqual(new JsonWebToken(calls[0].Dpop).GetPayloadValue<string>("jti"), new JsonWebToken(calls[1].Dpop).GetPayloadValue<string>("jti"));
    }

    [Fact]
    public async Task A_503_from_a_store_that_failed_once_is_retried_after_the_servers_Retry_After_and_then_accepted()
    {
        var store = default(FailingQueueStore);
        // The client's clock runs ahead of the server's while the test advances it: allow its proofs' iat that far.
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Auth:DPoP:MaxFutureSeconds"] = "30" },
            configure: b => b.Services.DecorateStore<ISubmissionQueueStore>(inner => store = new FailingQueueStore(inner) { WritesToFail = 1 }));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var postedAt = new ConcurrentQueue<DateTimeOffset>();
        using var traffic = new RecordingHandler((seen, _) =>
        {
            if (seen.Method == HttpMethod.Post && IsPit(seen))
            {
                postedAt.Enqueue(time.GetUtcNow());
            }

            return null;
        });
        var options = await RealPit.ClientOptions(server, traffic);
        options.HelseId!.TimeProvider = time;
        using var client = PitClient.Create(options);
        var json = await File.ReadAllTextAsync(Path.Combine(RealPit.ExamplesFolder(), "ingrid-solberg.json"));

        var submit = client.SubmitPatientJsonAsync(json);
        while (!submit.IsCompleted)
        {
            // The retry waits on the client's clock, which only this loop moves: one fake second per turn.
            if (store!.FailedWrites == 1)
            {
                time.Advance(TimeSpan.FromSeconds(1));
            }

            await Task.WhenAny(submit, Task.Delay(20));
        }

        var statusUrl = await submit;
        var status = await client.WaitForSubmissionAsync(statusUrl, TimeSpan.FromMilliseconds(50));

        Assert.Equal(SubmissionState.Completed, status.State);
        Assert.Equal(1, store!.FailedWrites);
        var posts = PitCalls(traffic).FindAll(r => r.Method == HttpMethod.Post);
        Assert.Equal(2, posts.Count);
        Assert.NotEqual(new JsonWebToken(posts[0].Dpop).GetPayloadValue<string>("jti"), new JsonWebToken(posts[1].Dpop).GetPayloadValue<string>("jti"));
        var times = postedAt.ToArray();
        Assert.True(times[1] - times[0] >= TimeSpan.FromSeconds(5), $"retried after {times[1] - times[0]} on the client's clock, before the server's Retry-After: 5");
    }

    [Fact]
    public async Task Other_server_errors_are_not_retried()
    {
        await using var server = await TestServer.StartAsync(configure: b => b.Services.DecorateStore<IPatientFeedStore>(inner => new FailingFeedStore(inner)));
        using var traffic = new RecordingHandler();
        using var client = PitClient.Create(await RealPit.ClientOptions(server, traffic));

        var error = await Assert.ThrowsAsync<PitApiException>(() => client.ReadPatientAsync("abc"));

        Assert.Equal(HttpStatusCode.InternalServerError, error.StatusCode);
        Assert.Contains("Correlation id", Assert.Single(error.IssueLines), StringComparison.Ordinal);
        Assert.Single(PitCalls(traffic));
    }

    private static bool IsPit(SeenRequest request) => request.Url.AbsolutePath.StartsWith("/v1/", StringComparison.Ordinal);

    private static List<SeenRequest> PitCalls(RecordingHandler traffic) => [.. traffic.Seen.Where(IsPit)];

    private static async Task<List<string>> SubmitExamplesAsync(PitClient client, int count)
    {
        var ids = new List<string>();
        foreach (var file in Directory.EnumerateFiles(RealPit.ExamplesFolder(), "*.json").Order(StringComparer.Ordinal).Take(count))
        {
            var status = await client.WaitForSubmissionAsync(await client.SubmitPatientJsonAsync(await File.ReadAllTextAsync(file)), TimeSpan.FromMilliseconds(50));
            ids.Add(status.PatientId!);
        }

        return ids;
    }

    private static HttpResponseMessage NonceChallenge()
    {
        var challenge = new HttpResponseMessage(HttpStatusCode.Unauthorized);
        challenge.Headers.TryAddWithoutValidation("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"");
        challenge.Headers.Add("DPoP-Nonce", Guid.NewGuid().ToString());
        return challenge;
    }

    private static HttpResponseMessage TooManyRequests()
    {
        var busy = new HttpResponseMessage(HttpStatusCode.TooManyRequests);
        busy.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.Zero);
        return busy;
    }
}
