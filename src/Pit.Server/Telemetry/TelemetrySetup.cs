using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Pit.Server.Telemetry;

internal static class TelemetrySetup
{
    /// <summary>
    /// Metrics and traces through OpenTelemetry. Exported over OTLP when <c>Pit:Telemetry:OtlpEndpoint</c> (or the
    /// standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>) is set; metrics are also collected for the Prometheus scrape when
    /// <c>Pit:Telemetry:Prometheus:Enabled</c> is true.
    /// </summary>
    /// <remarks>
    /// Nothing is collected for nobody. A tracer provider is a listener that samples every span: registered without an
    /// exporter it made ASP.NET Core, Npgsql and the server's own source build, tag and drop a span per request and
    /// per group commit (issue 18: spans and metrics were ~5 % of POST's CPU). Without an exporter no provider is
    /// registered, so <see cref="System.Diagnostics.ActivitySource.StartActivity(string, System.Diagnostics.ActivityKind)"/>
    /// returns null; a listener added by someone else (a test, a profiler) still gets every span. The same holds
    /// for metrics: without OTLP or Prometheus no meter provider aggregates them, and <see cref="System.Diagnostics.Metrics.MeterListener"/>s
    /// still see every measurement (the instruments and their names do not change).
    /// </remarks>
    public static IServiceCollection AddPitTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<PitMetrics>();
        var endpoint = configuration["Pit:Telemetry:OtlpEndpoint"] ?? configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        var otlp = !string.IsNullOrWhiteSpace(endpoint);
        var prometheus = configuration.GetValue<bool>("Pit:Telemetry:Prometheus:Enabled");
        if (!otlp && !prometheus)
        {
            return services;
        }

        var builder = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("pit-server"))
            .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddNpgsqlInstrumentation().AddMeter(PitMetrics.MeterName));
        if (otlp)
        {
            var uri = new Uri(endpoint!);
            builder.WithMetrics(m => m.AddOtlpExporter(o => o.Endpoint = uri))
                .WithTracing(t => t.AddAspNetCoreInstrumentation(o => o.Filter = c => !c.Request.Path.StartsWithSegments("/health"))
                    .AddNpgsql().AddSource(PitMetrics.MeterName).AddOtlpExporter(o => o.Endpoint = uri));
        }

        return services;
    }
}
