using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Pit.Server.Patients;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Patients;

/// <summary>
/// The server-wide budget for request bodies being read (Pit:Processing:MaxInFlightBodyBytes), through real HTTP: a
/// POST that cannot get its share is answered 503 + Retry-After + OperationOutcome without its body being taken,
/// and nothing accepted is lost.
/// </summary>
public sealed class BodyBudgetTests
{
    private const int LargeBody = 600_000;

    [Fact]
    public async Task A_large_post_beyond_the_spent_budget_is_answered_503_with_Retry_After_while_the_one_being_read_gets_202()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Pit:Processing:MaxInFlightBodyBytes"] = "1000000",
                ["Pit:Processing:InFlightBodyWait"] = "00:00:00",
            },
            configure: logs.AddTo);
        var budget = server.Services.GetRequiredService<RequestBodyBudget>();
        var refusals = new ConcurrentQueue<long>();
        using var listener = Listen(server, "pit.submissions.body_budget_refused", refusals);
        using var client = server.CreateClient();
        using var sender = new BodySender(server);

        // The first POST sends half its body and stalls: it holds its share while it is being read.
        var firstFnr = TestPatients.NewFnr();
        var stalled = new StalledPatient(firstFnr, LargeBody);
        var first = sender.PostAsync(stalled);
        await WaitUntil(() => budget.InUse == LargeBody);

        var secondFnr = TestPatients.NewFnr();
        using (var second = await sender.PostAsync(new StalledPatient(secondFnr, LargeBody, stall: false)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
            Assert.True(second.Headers.RetryAfter?.Delta > TimeSpan.Zero, "A refused submission carries Retry-After.");
            var outcome = JsonNode.Parse(await second.Content.ReadAsStringAsync())!;
            Assert.Contains("Nothing was accepted", PitApi.AssertOutcome(outcome, "transient"), StringComparison.Ordinal);
        }

        Assert.Equal([1L], refusals);
        Assert.Contains(logs.Entries, e => e.Text.Contains("Request body budget spent (600000 of 1000000 bytes held", StringComparison.Ordinal));

        stalled.Resume();
        using var accepted = await first;
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.WaitProcessedAsync(accepted.Content.Headers.ContentLocation!)).Status);
        Assert.Equal(0, budget.InUse);

        // With the budget free again the refused one gets in on its retry; nothing else was stored.
        using var retried = await sender.PostAsync(new StalledPatient(secondFnr, LargeBody, stall: false));
        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.WaitProcessedAsync(retried.Content.Headers.ContentLocation!)).Status);
        var stored = (await client.GetJsonAsync("v1/Patient?_count=50", HttpStatusCode.OK)).Resources()
            .Select(p => (string)p["identifier"]![0]!["value"]!).Order().ToList();
        Assert.Equal(new[] { firstFnr, secondFnr }.Order(), stored);
    }

    [Fact]
    public async Task A_post_that_waits_for_its_share_is_read_and_accepted_once_the_body_before_it_is_parsed()
    {
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Pit:Processing:MaxInFlightBodyBytes"] = "1000000",
                ["Pit:Processing:InFlightBodyWait"] = "00:00:30",
            });
        var budget = server.Services.GetRequiredService<RequestBodyBudget>();
        using var sender = new BodySender(server);

        var stalled = new StalledPatient(TestPatients.NewFnr(), LargeBody);
        var first = sender.PostAsync(stalled);
        await WaitUntil(() => budget.InUse == LargeBody);
        var second = sender.PostAsync(new StalledPatient(TestPatients.NewFnr(), LargeBody, stall: false));
        await WaitUntil(() => budget.Waiting == 1);
        Assert.False(second.IsCompleted);

        stalled.Resume();

        using var firstAnswer = await first;
        using var secondAnswer = await second;
        Assert.Equal(HttpStatusCode.Accepted, firstAnswer.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, secondAnswer.StatusCode);
        Assert.Equal(0, budget.InUse);
    }

    [Fact]
    public async Task A_chunked_post_is_charged_the_largest_body_it_may_send()
    {
        await using var server = await TestServer.StartAsync();
        var budget = server.Services.GetRequiredService<RequestBodyBudget>();
        using var sender = new BodySender(server);

        var stalled = new StalledPatient(TestPatients.NewFnr(), LargeBody, chunked: true);
        var post = sender.PostAsync(stalled);
        await WaitUntil(() => budget.InUse > 0);

        Assert.Equal(PatientSubmissionReader.MaxBodyBytes, budget.InUse);
        stalled.Resume();
        using var answer = await post;
        Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
        Assert.Equal(0, budget.InUse);
    }

    [Theory]
    [InlineData("Pit:Processing:MaxInFlightBodyBytes", "0")]
    [InlineData("Pit:Processing:InFlightBodyWait", "-00:00:01")]
    [InlineData("Pit:Processing:InFlightBodyWait", "00:01:00")]
    public async Task An_invalid_budget_setting_stops_the_server_at_start(string key, string value)
    {
        var failure = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(
            () => TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));

        Assert.Contains(key, failure.Message, StringComparison.Ordinal);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 3000 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        Assert.True(condition(), "The server did not reach the expected state within 30 s.");
    }

    private static MeterListener Listen(TestServer server, string instrument, ConcurrentQueue<long> values)
    {
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var listener = new MeterListener
        {
            InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == PitMetrics.MeterName && ReferenceEquals(i.Meter.Scope, factory) && i.Name == instrument)
                {
                    l.EnableMeasurementEvents(i);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => values.Enqueue(value));
        listener.Start();
        return listener;
    }

    /// <summary>
    /// POSTs with a real access token and DPoP proof whose body goes out as it is written (the DPoP handler of the
    /// other tests reads a body whole first, to resend it after a nonce challenge; nonces are off here).
    /// </summary>
    private sealed class BodySender(TestServer server) : IDisposable
    {
        private readonly DpopKey _key = DpopKey.CreateEcP256();
        private readonly HttpClient _http = new() { BaseAddress = server.BaseAddress };
        private string? _token;

        public Task<HttpResponseMessage> PostAsync(HttpContent content)
        {
            _token ??= server.TokenMinter.Mint(new AccessTokenSpec
            {
                Jkt = _key.Thumbprint,
                OrgnrParent = TestServer.DefaultOrganisation,
                Scopes = [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope],
            });
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.BaseAddress, "v1/Patient")) { Content = content };
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("DPoP", _token);
            request.Headers.Add("DPoP", _key.CreateProof(HttpMethod.Post, request.RequestUri!, _token));
            return _http.SendAsync(request);
        }

        public void Dispose()
        {
            _http.Dispose();
            _key.Dispose();
        }
    }

    /// <summary>
    /// A valid Patient of <c>bytes</c> bytes (a long address text) that, unless told otherwise, sends its first half
    /// and then waits for <see cref="Resume"/>: a body the server is in the middle of reading.
    /// </summary>
    private sealed class StalledPatient : HttpContent
    {
        private readonly byte[] _body;
        private readonly bool _chunked;
        private readonly TaskCompletionSource _resume = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public StalledPatient(string fnr, int bytes, bool stall = true, bool chunked = false)
        {
            var json = JsonNode.Parse(TestPatients.Json(fnr))!;
            json["address"] = new JsonArray(new JsonObject { ["text"] = "" });
            json["address"]![0]!["text"] = new string('x', bytes - Encoding.UTF8.GetByteCount(json.ToJsonString()));
            _body = Encoding.UTF8.GetBytes(json.ToJsonString());
            Assert.Equal(bytes, _body.Length);
            _chunked = chunked;
            if (!stall)
            {
                _resume.SetResult();
            }

            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/fhir+json");
        }

        public void Resume() => _resume.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(_body.AsMemory(0, _body.Length / 2));
            await stream.FlushAsync();
            await _resume.Task.WaitAsync(TimeSpan.FromSeconds(60));
            await stream.WriteAsync(_body.AsMemory(_body.Length / 2));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _body.Length;
            return !_chunked;
        }
    }
}
