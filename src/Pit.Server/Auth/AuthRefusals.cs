using Pit.Server.Telemetry;

namespace Pit.Server.Auth;

/// <summary>
/// Where every refused credential is told: one log line naming the precise reason (event 70, e.g.
/// <c>proof_replayed</c>, <c>token_expired</c>, <c>insufficient_scope</c>) and one <c>pit.auth.failures</c> count with
/// the same reason, so the log and the metric never disagree. Never the token or the proof: the reason is one of the
/// fixed codes of <see cref="AuthFailureReasons"/>.
/// </summary>
internal sealed partial class AuthRefusals(PitMetrics metrics, ILogger<AuthRefusals> logger)
{
    public void Refused(string reason)
    {
        LogRefused(logger, reason);
        metrics.AuthFailure(reason);
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "Credentials refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string reason);
}
