using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Pit.Server.Storage;

/// <summary>
/// How the readiness checks of the stores (<c>store</c>, <c>store-reads</c>) probe a connection: a real round trip
/// that must answer within <see cref="Timeout"/>, and any failure or timeout reported as unhealthy with a fixed
/// description (never the exception's message, which may name hosts and users).
/// </summary>
internal static class StoreProbe
{
    /// <summary>How long a probe may take before the store counts as unreachable.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    public static async Task<HealthCheckResult> RunAsync(
        Func<CancellationToken, Task<HealthCheckResult>> probe, string unhealthy, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(Timeout);
            return await probe(timeout.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy(unhealthy);
        }
    }
}
