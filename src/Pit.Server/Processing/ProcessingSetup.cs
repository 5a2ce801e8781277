namespace Pit.Server.Processing;

internal static class ProcessingSetup
{
    public static IServiceCollection AddPitProcessing(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ProcessingOptions>().Bind(configuration.GetSection("Pit:Processing"))
            .Validate(o => o.BatchSize is >= 1 and <= 10_000, "Pit:Processing:BatchSize must be 1-10000.")
            .Validate(o => o.MaxQueuedBytes >= 1, "Pit:Processing:MaxQueuedBytes must be positive.")
            .Validate(o => o.MaxQueuedSubmissions >= 1, "Pit:Processing:MaxQueuedSubmissions must be positive.")
            .Validate(o => o.MaxQueuedAuditEntries >= 1, "Pit:Processing:MaxQueuedAuditEntries must be positive.")
            .Validate(o => o.MaxInFlightBodyBytes >= 1, "Pit:Processing:MaxInFlightBodyBytes must be positive.")
            .Validate(o => o.InFlightBodyWait >= TimeSpan.Zero && o.InFlightBodyWait <= TimeSpan.FromSeconds(30),
                "Pit:Processing:InFlightBodyWait must be 00:00:00-00:00:30.")
            .ValidateOnStart();
        services.AddOptions<AuditOptions>().Bind(configuration.GetSection("Pit:Audit"))
            .Validate(o => o.RetentionDays is >= 1 and <= 3650, "Pit:Audit:RetentionDays must be 1-3650.")
            .Validate(o => o.ReadinessBacklog >= 1, "Pit:Audit:ReadinessBacklog must be positive.")
            .ValidateOnStart();
        // Kubernetes waits 30 s after SIGTERM before it kills; finish well inside that.
        services.AddOptions<HostOptions>().Configure(o => o.ShutdownTimeout = configuration.GetValue("Pit:ShutdownTimeout", TimeSpan.FromSeconds(25)));
        services.AddSingleton<ProcessingSignal>();
        services.AddSingleton<SubmissionQueue>();
        services.AddHostedService(sp => sp.GetRequiredService<SubmissionQueue>());
        services.AddSingleton<AuditTrail>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditTrail>());
        services.AddHealthChecks().AddCheck<AuditBacklogHealthCheck>("audit", tags: ["ready"]);
        services.AddHostedService<SubmissionProcessor>();
        return services;
    }
}
