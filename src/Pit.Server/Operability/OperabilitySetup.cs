using Pit.Server.Telemetry;

namespace Pit.Server.Operability;

/// <summary>What operators need besides the API: correlation ids, request metrics, rate limits, queue health, scrapes.</summary>
internal static class OperabilitySetup
{
    public static WebApplicationBuilder AddPitOperability(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddPitLogRedaction();
        services.AddPitCorrelationIds();
        services.AddPitRateLimiting(builder.Configuration);
        services.AddOptions<HealthOptions>().Bind(builder.Configuration.GetSection("Pit:Health"))
            .Validate(o => o.MaxQueueAge > TimeSpan.Zero, "Pit:Health:MaxQueueAge must be positive.")
            .ValidateOnStart();
        services.AddSingleton<QueueMonitor>();
        services.AddHostedService<OperabilityGauges>();
        services.AddHostedService<StartupLog>();
        services.AddHealthChecks().AddCheck<QueueAgeHealthCheck>("queue", tags: ["ready"]);
        builder.AddPitPrometheus();
        return builder;
    }

    /// <summary>First in the application's pipeline (the correlation id is set even earlier, by a startup filter).</summary>
    public static WebApplication UsePitOperability(this WebApplication app) =>
        app.UsePitPrometheus().UsePitAccessLog();
}
