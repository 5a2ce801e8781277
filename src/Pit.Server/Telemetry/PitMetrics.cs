using System.Diagnostics;
using System.Diagnostics.Metrics;
using Pit.Server.Upsert;

namespace Pit.Server.Telemetry;

/// <summary>The server's own metrics (meter <c>Pit.Server</c>): what operators watch besides HTTP metrics.</summary>
internal sealed class PitMetrics
{
    /// <summary>The meter name, for exporters and listeners; also the name of the server's activity source.</summary>
    public const string MeterName = "Pit.Server";

    private readonly Counter<long> _submissions;
    private readonly Histogram<int> _commitBatch;
    private readonly Counter<long> _applied;
    private readonly Counter<long> _applyFailures;
    private readonly Histogram<double> _visibilityLag;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _authFailures;
    private readonly Counter<long> _rateLimited;
    private readonly Counter<long> _bodyBudgetRefused;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public PitMetrics(IMeterFactory meterFactory)
    {
        Meter = meterFactory.Create(MeterName);
        _submissions = Meter.CreateCounter<long>("pit.submissions", description: "POST /v1/Patient outcomes by result.");
        _commitBatch = Meter.CreateHistogram<int>("pit.submissions.commit_batch", description: "Submissions made durable per group commit.");
        _applied = Meter.CreateCounter<long>("pit.submissions.applied", description: "Submissions taken off the queue by the processor.");
        _applyFailures = Meter.CreateCounter<long>("pit.submissions.apply_failures", description: "Processor batches that failed and were retried.");
        _visibilityLag = Meter.CreateHistogram<double>("pit.submissions.visibility_lag", unit: "s",
            description: "Time from a submission's acceptance (202) to its Patient being visible to readers.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _requests = Meter.CreateCounter<long>("pit.requests", description: "HTTP requests answered, by route template and status code.");
        _authFailures = Meter.CreateCounter<long>("pit.auth.failures", description: "Refused access tokens and DPoP proofs, by reason.");
        _rateLimited = Meter.CreateCounter<long>("pit.rate_limit.rejections", description: "Requests refused with 429 by the per-client rate limit.");
        _bodyBudgetRefused = Meter.CreateCounter<long>("pit.submissions.body_budget_refused",
            description: "POSTs answered 503 because the server-wide budget for request bodies being read was spent (Pit:Processing:MaxInFlightBodyBytes).");
    }

    /// <summary>The meter, for observable instruments registered elsewhere.</summary>
    internal Meter Meter { get; }

    /// <summary>The activity source of the server's own spans (accept, group commit, apply).</summary>
    internal static ActivitySource Tracing { get; } = new(MeterName);

    /// <summary>One POST answered; <paramref name="result"/> is accepted, rejected or unavailable.</summary>
    public void Submission(string result) => _submissions.Add(1, new KeyValuePair<string, object?>("result", result));

    /// <summary>One group commit of <paramref name="size"/> submissions.</summary>
    public void CommitBatch(int size) => _commitBatch.Record(size);

    /// <summary><paramref name="count"/> submissions processed.</summary>
    public void Applied(int count) => _applied.Add(count);

    /// <summary>One processor batch failed.</summary>
    public void ApplyFailed() => _applyFailures.Add(1);

    /// <summary>
    /// Submissions accepted at <paramref name="acceptedAt"/> (microseconds since the epoch) became visible at
    /// <paramref name="now"/>. SQLite records every submission its apply takes, at the apply's commit; PostgreSQL every
    /// version the sequencer stamps, at the stamp's commit, from the newest submission that version carries
    /// (submissions that wrote no version are not recorded).
    /// </summary>
    public void VisibilityLags(DateTimeOffset now, IEnumerable<long> acceptedAt)
    {
        foreach (var at in acceptedAt)
        {
            _visibilityLag.Record(Math.Max(0, (now - FeedTime.ToDateTimeOffset(at)).TotalSeconds));
        }
    }

    /// <summary>One request answered.</summary>
    public void Request(string route, int status) =>
        _requests.Add(1, new KeyValuePair<string, object?>("http.route", route), new KeyValuePair<string, object?>("http.response.status_code", status));

    /// <summary>One credential refused; <paramref name="reason"/> is one of a fixed set (see <see cref="AuthFailureReasons"/>).</summary>
    public void AuthFailure(string reason) => _authFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>One POST refused because it could not get its share of the request body budget in time.</summary>
    public void BodyBudgetRefused() => _bodyBudgetRefused.Add(1);

    /// <summary>One request refused by the rate limit of <paramref name="clientId"/> (a registered HelseID client).</summary>
    public void RateLimited(string clientId) => _rateLimited.Add(1, new KeyValuePair<string, object?>("client_id", clientId));
}
