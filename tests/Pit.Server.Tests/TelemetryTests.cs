using Microsoft.Extensions.Configuration;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Pit.Server.Telemetry;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class TelemetryTests
{
    [Fact]
    public async Task Submissions_are_counted_by_result_and_group_commits_processing_and_visibility_lag_are_measured()
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
        var lags = new ConcurrentQueue<double>();
        listener.SetMeasurementEventCallback<double>((i, v, _, _) =>
        {
            if (i.Name == "pit.submissions.visibility_lag")
            {
                lags.Enqueue(v);
            }
        });
        listener.Start();

        using var client = server.CreateClient();
        await client.WaitProcessedAsync(await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr())));
        await client.PostAsync("v1/Patient", TestPatients.Content("{}"));
        await applied.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains(measurements, m => m is ("pit.submissions", 1, "accepted"));
        Assert.Contains(measurements, m => m is ("pit.submissions", 1, "rejected"));
        Assert.Contains(measurements, m => m.Instrument == "pit.submissions.commit_batch" && m.Value >= 1);
        Assert.Contains(measurements, m => m.Instrument == "pit.submissions.applied" && m.Value >= 1);
        // SQLite's apply makes the Patient visible at its commit, so the processor records the lag there (before it
        // counts the batch as applied, which the test awaited).
        Assert.True(Assert.Single(lags) is >= 0 and < 30);
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

public sealed class TelemetryWiringTests
{
    [Fact]
    public void Without_an_exporter_no_tracer_or_meter_provider_listens()
    {
        using var services = Provider([]);

        Assert.Null(services.GetService<OpenTelemetry.Trace.TracerProvider>());
        Assert.Null(services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    [Fact]
    public void With_an_OTLP_endpoint_spans_and_metrics_are_collected()
    {
        using var services = Provider(new() { ["Pit:Telemetry:OtlpEndpoint"] = "http://127.0.0.1:4317" });

        Assert.NotNull(services.GetService<OpenTelemetry.Trace.TracerProvider>());
        Assert.NotNull(services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    [Fact]
    public void With_the_Prometheus_scrape_metrics_are_collected_but_spans_are_not()
    {
        using var services = Provider(new() { ["Pit:Telemetry:Prometheus:Enabled"] = "true" });

        Assert.Null(services.GetService<OpenTelemetry.Trace.TracerProvider>());
        Assert.NotNull(services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection().AddLogging().AddMetrics();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddPitTelemetry(configuration);
        return services.BuildServiceProvider();
    }
}
