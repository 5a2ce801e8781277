using Pit.Server.Audit;

namespace Pit.Server.Processing;

internal static class ProcessingSetup
{
    /// <summary>
    /// <c>Pit:ShutdownTimeout</c> when unset. Kubernetes waits 30 s after SIGTERM before it kills; finish well inside
    /// that (deploy/pit-server.service gives systemd's TimeoutStopSec more than this).
    /// </summary>
    public static readonly TimeSpan DefaultShutdownTimeout = TimeSpan.FromSeconds(25);

    public static IServiceCollection AddPitProcessing(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ProcessingOptions>().Bind(configuration.GetSection("Pit:Processing"))
            .Validate(o => o.BatchSize is >= 1 and <= 10_000, "Pit:Processing:BatchSize must be 1-10000.")
            .Validate(o => o.MaxBatchBytes >= 1, "Pit:Processing:MaxBatchBytes must be positive.")
            .Validate(o => o.MaxQueuedBytes >= 1, "Pit:Processing:MaxQueuedBytes must be positive.")
            .Validate(o => o.MaxQueuedSubmissions >= 1, "Pit:Processing:MaxQueuedSubmissions must be positive.")
            .Validate(o => o.MaxQueuedAuditEntries >= 1, "Pit:Processing:MaxQueuedAuditEntries must be positive.")
            .Validate(o => o.MaxInFlightBodyBytes >= 1, "Pit:Processing:MaxInFlightBodyBytes must be positive.")
            .Validate(o => o.InFlightBodyWait >= TimeSpan.Zero && o.InFlightBodyWait <= TimeSpan.FromSeconds(30),
                "Pit:Processing:InFlightBodyWait must be 00:00:00-00:00:30.")
            .ValidateOnStart();
        // Pit:Audit is registered with the store (Storage/StorageSetup.cs): its retention reads it too.
        services.AddOptions<HostOptions>().Configure(o => o.ShutdownTimeout = configuration.GetValue("Pit:ShutdownTimeout", DefaultShutdownTimeout));
        services.AddSingleton<ProcessingSignal>();
        services.AddSingleton<SubmissionQueue>();
        services.AddHostedService(sp => sp.GetRequiredService<SubmissionQueue>());
        // Between the queue and the processor, as before the audit trail had a folder of its own: hosted services start
        // in the order they are registered.
        services.AddPitAudit();
        services.AddHostedService<SubmissionProcessor>();
        return services;
    }
}
