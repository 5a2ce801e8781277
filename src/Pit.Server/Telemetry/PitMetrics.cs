using System.Diagnostics.Metrics;

namespace Pit.Server.Telemetry;

/// <summary>The server's own metrics (meter <c>Pit.Server</c>): what operators watch besides HTTP metrics.</summary>
public sealed class PitMetrics
{
    /// <summary>The meter name, for exporters and listeners.</summary>
    public const string MeterName = "Pit.Server";

    private readonly Counter<long> _submissions;
    private readonly Histogram<int> _commitBatch;
    private readonly Counter<long> _applied;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public PitMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _submissions = meter.CreateCounter<long>("pit.submissions", description: "POST /v1/Patient outcomes by result.");
        _commitBatch = meter.CreateHistogram<int>("pit.submissions.commit_batch", description: "Submissions made durable per group commit.");
        _applied = meter.CreateCounter<long>("pit.submissions.applied", description: "Submissions taken off the queue by the processor.");
    }

    /// <summary>One POST answered; <paramref name="result"/> is accepted, rejected or unavailable.</summary>
    public void Submission(string result) => _submissions.Add(1, new KeyValuePair<string, object?>("result", result));

    /// <summary>One group commit of <paramref name="size"/> submissions.</summary>
    public void CommitBatch(int size) => _commitBatch.Record(size);

    /// <summary><paramref name="count"/> submissions processed.</summary>
    public void Applied(int count) => _applied.Add(count);
}
