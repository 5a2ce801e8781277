namespace Pit.Server.Audit;

internal static class AuditSetup
{
    /// <summary>
    /// The audit trail's writer loop and its readiness check. <c>Pit:Audit</c> itself is registered with the store
    /// (Storage/StorageSetup.cs), whose retention reads it too, and the buffer's bound is
    /// <c>Pit:Processing:MaxQueuedAuditEntries</c>.
    /// </summary>
    public static IServiceCollection AddPitAudit(this IServiceCollection services)
    {
        services.AddSingleton<AuditTrail>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditTrail>());
        services.AddHealthChecks().AddCheck<AuditBacklogHealthCheck>("audit", tags: ["ready"]);
        return services;
    }
}
