using System.Text;
using Hl7.Fhir.Model;
using Microsoft.Net.Http.Headers;
using Pit.Server.Fhir;

namespace Pit.Server.Auth;

/// <summary>A refused request: the OAuth error for <c>WWW-Authenticate</c> and the reason given to the client.</summary>
internal sealed class DpopAuthenticationException(string error, string description, string? nonce = null) : Exception(description)
{
    public string Error { get; } = error;

    public string? Nonce { get; } = nonce;
}

/// <summary>The 401, 403 and 503 problems of authentication and authorisation: a <c>DPoP</c> challenge (RFC 9449 §7.1) and an OperationOutcome.</summary>
internal static class AuthResponses
{
    public static PitProblem Unauthorized(string algorithms, string? error, string? description, string? nonce)
    {
        var challenge = new StringBuilder("DPoP ");
        if (error is not null)
        {
            challenge.Append("error=\"").Append(error).Append("\", error_description=\"").Append(Quote(description ?? error)).Append("\", ");
        }

        challenge.Append("algs=\"").Append(algorithms).Append('"');
        var diagnostics = description ?? "Authentication with a HelseID access token and a DPoP proof is required";
        var problem = NoStore(PitProblem.Error(StatusCodes.Status401Unauthorized,
            error is null ? OperationOutcome.IssueType.Login : OperationOutcome.IssueType.Security, diagnostics))
            .WithHeader(HeaderNames.WWWAuthenticate, challenge.ToString());
        return nonce is null ? problem : problem.WithHeader("DPoP-Nonce", nonce);
    }

    public static PitProblem InsufficientScope(string algorithms, string scope) =>
        Forbidden($"The access token lacks scope {scope}").WithHeader(HeaderNames.WWWAuthenticate,
            $"DPoP error=\"insufficient_scope\", error_description=\"The access token lacks scope {scope}\", scope=\"{scope}\", algs=\"{algorithms}\"");

    public static PitProblem Forbidden(string diagnostics) =>
        NoStore(PitProblem.Error(StatusCodes.Status403Forbidden, OperationOutcome.IssueType.Forbidden, diagnostics));

    /// <summary>503: proofs cannot be checked for replay right now (the shared replay cache is unreachable).</summary>
    public static PitProblem Unavailable() =>
        NoStore(PitProblem.Unavailable("The service cannot check DPoP proofs right now. Nothing was done; retry later."));

    /// <summary>429: the client sent more new DPoP proofs than its share; other clients are unaffected.</summary>
    public static PitProblem TooManyProofs(int retryAfterSeconds) =>
        NoStore(PitProblem.Error(StatusCodes.Status429TooManyRequests, OperationOutcome.IssueType.Throttled,
            "This client is sending more requests than its share. Nothing was done; retry after the indicated time."))
            .WithHeader(HeaderNames.RetryAfter, retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static PitProblem NoStore(PitProblem problem) => problem.WithHeader(HeaderNames.CacheControl, "no-store");

    private static string Quote(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
