using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class TelemetryTests
{
    [Fact]
    public async Task Submissions_are_counted_by_result_and_group_commits_and_processing_are_measured()
    {
        await using var server = await TestServer.StartAsync();
        var factory = server.Services.GetRequiredService<IMeterFactory>();
        var measurements = new ConcurrentQueue<(string Instrument, long Value, string? Result)>();
        // The processor records pit.submissions.applied after the commit the client waits for: await the measurement.
        var applied = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == PitMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
        {
            measurements.Enqueue((i.Name, v, Result(tags)));
            if (i.Name == "pit.submissions.applied" && v >= 1)
            {
                applied.TrySetResult();
            }
        });
        listener.SetMeasurementEventCallback<int>((i, v, tags, _) => measurements.Enqueue((i.Name, v, Result(tags))));
        listener.Start();

        using var client = server.CreateClient();
        await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr())));
        await client.PostAsync("v1/Patient", TestPatients.Content("{}"));
        await applied.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains(measurements, m => m is ("pit.submissions", 1, "accepted"));
        Assert.Contains(measurements, m => m is ("pit.submissions", 1, "rejected"));
        Assert.Contains(measurements, m => m.Instrument == "pit.submissions.commit_batch" && m.Value >= 1);
        Assert.Contains(measurements, m => m.Instrument == "pit.submissions.applied" && m.Value >= 1);
    }

    private static string? Result(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == "result")
            {
                return tag.Value as string;
            }
        }

        return null;
    }
}
