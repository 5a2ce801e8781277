using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Pit.Server.Telemetry;

internal static class TelemetrySetup
{
    /// <summary>
    /// Metrics and traces through OpenTelemetry. Exported over OTLP when <c>Pit:Telemetry:OtlpEndpoint</c> (or the
    /// standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>) is set; otherwise collected in-process only.
    /// </summary>
    public static IServiceCollection AddPitTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<PitMetrics>();
        var endpoint = configuration["Pit:Telemetry:OtlpEndpoint"] ?? configuration["OTEL_EXPORTER_OTLP_ENDPOINT"];
        var builder = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("pit-server"))
            .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddNpgsqlInstrumentation().AddMeter(PitMetrics.MeterName))
            .WithTracing(t => t.AddAspNetCoreInstrumentation(o => o.Filter = c => !c.Request.Path.StartsWithSegments("/health"))
                .AddNpgsql().AddSource(PitMetrics.MeterName));
        if (!string.IsNullOrWhiteSpace(endpoint))
        {
            var uri = new Uri(endpoint);
            builder.WithMetrics(m => m.AddOtlpExporter(o => o.Endpoint = uri))
                .WithTracing(t => t.AddOtlpExporter(o => o.Endpoint = uri));
        }

        return services;
    }
}
