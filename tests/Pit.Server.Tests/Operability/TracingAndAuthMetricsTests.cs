using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Pit.Server.Auth;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Operability;

public sealed class TracingAndAuthMetricsTests
{
    [Fact]
    public async Task The_POST_span_and_the_span_that_applies_the_submission_carry_its_id()
    {
        var spans = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is PitMetrics.MeterName or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = spans.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var server = await TestServer.StartAsync();
        using var client = server.CreateClient();

        var statusUrl = await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        await client.WaitProcessedAsync(statusUrl);

        var id = statusUrl.Segments[^1];
        var post = Assert.Single(spans, s => s.GetTagItem("pit.submission.id") as string == id);
        Assert.Equal("Microsoft.AspNetCore", post.Source.Name);
        Assert.Contains(spans, s => s.OperationName == "pit.submissions.apply" && ((string[]?)s.GetTagItem("pit.submission.ids"))?.Contains(id) == true);
        Assert.Contains(spans, s => s.OperationName == "pit.submissions.commit" && s.Links.Any(l => l.Context.SpanId == post.SpanId));
    }

    [Fact]
    public async Task Each_refused_credential_is_counted_with_the_reason_of_the_check_that_refused_it()
    {
        await using var server = await TestServer.StartAsync();
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var reasons = new ConcurrentQueue<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (i, l) =>
            {
                if (ReferenceEquals(i.Meter.Scope, factory) && i.Name == "pit.auth.failures")
                {
                    l.EnableMeasurementEvents(i);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                reasons.Enqueue((string)tag.Value!);
            }
        });
        listener.Start();
        using var requests = new Auth.AuthRequests(server);
        var token = requests.ValidToken();
        var proof = requests.Proof(token);

        using (await requests.SendAsync(null, []))
        using (await requests.SendAsync("Bearer " + token, []))
        using (await requests.SendAsync(token, proof))
        using (var replayed = await requests.SendAsync(token, proof))
        using (await requests.SendAsync(requests.Token(new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddHours(-1) }), requests.Proof(token)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, replayed.StatusCode);
        }

        Assert.Equal(["no_credentials", "bearer_scheme", "proof_replayed", "token_expired"], reasons);
    }

    [Fact]
    public void Every_proof_check_has_its_own_reason()
    {
        var reasons = Enum.GetValues<DpopError>().Select(AuthFailureReasons.Of).ToList();

        Assert.Equal(reasons.Count, reasons.Distinct().Count());
        Assert.Contains("proof_url_mismatch", reasons);
        Assert.Contains("proof_key_not_bound_to_token", reasons);
    }
}
