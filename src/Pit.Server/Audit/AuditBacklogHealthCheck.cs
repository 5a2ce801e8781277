using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Pit.Server.Audit;

/// <summary>
/// Readiness of the audit trail: unhealthy while more than <see cref="AuditOptions.ReadinessBacklog"/> entries wait
/// for their write or entries have been dropped since the last successful write, degraded while writes fail with
/// entries waiting (an outage the buffer is riding out), healthy otherwise. The data carry the numbers.
/// </summary>
internal sealed class AuditBacklogHealthCheck(AuditTrail audit, IOptions<AuditOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var backlog = audit.Backlog;
        var data = new Dictionary<string, object>
        {
            ["backlog"] = backlog,
            ["capacity"] = audit.Capacity,
            ["dropped"] = audit.Dropped,
            ["writesFailing"] = audit.WritesFailing,
        };
        var limit = options.Value.ReadinessBacklog;
        var result = backlog > limit || audit.DroppingNow
            ? HealthCheckResult.Unhealthy($"{backlog} audit entries wait for their write (limit {limit}).", data: data)
            : audit.WritesFailing && backlog > 0
                ? HealthCheckResult.Degraded($"Audit writes fail; {backlog} entries wait in the buffer.", data: data)
                : HealthCheckResult.Healthy($"{backlog} audit entries wait for their write.", data);
        return Task.FromResult(result);
    }
}
