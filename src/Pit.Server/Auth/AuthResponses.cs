using System.Text;
using Hl7.Fhir.Model;
using Task = System.Threading.Tasks.Task;
using Pit.Server.Fhir;

namespace Pit.Server.Auth;

/// <summary>A refused request: the OAuth error for <c>WWW-Authenticate</c> and the reason given to the client.</summary>
internal sealed class DpopAuthenticationException(string error, string description, string? nonce = null) : Exception(description)
{
    public string Error { get; } = error;

    public string? Nonce { get; } = nonce;
}

/// <summary>Writes 401 and 403 answers: a <c>DPoP</c> challenge (RFC 9449 §7.1) and a FHIR OperationOutcome.</summary>
internal static class AuthResponses
{
    public static Task WriteUnauthorizedAsync(HttpContext context, string algorithms, string? error, string? description, string? nonce)
    {
        var challenge = new StringBuilder("DPoP ");
        if (error is not null)
        {
            challenge.Append("error=\"").Append(error).Append("\", error_description=\"").Append(Quote(description ?? error)).Append("\", ");
        }

        challenge.Append("algs=\"").Append(algorithms).Append('"');
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = challenge.ToString();
        if (nonce is not null)
        {
            context.Response.Headers["DPoP-Nonce"] = nonce;
        }

        var diagnostics = description ?? "Authentication with a HelseID access token and a DPoP proof is required";
        return WriteOutcomeAsync(context, error is null ? OperationOutcome.IssueType.Login : OperationOutcome.IssueType.Security, diagnostics);
    }

    public static Task WriteInsufficientScopeAsync(HttpContext context, string algorithms, string scope)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        context.Response.Headers.WWWAuthenticate =
            $"DPoP error=\"insufficient_scope\", error_description=\"The access token lacks scope {scope}\", scope=\"{scope}\", algs=\"{algorithms}\"";
        return WriteOutcomeAsync(context, OperationOutcome.IssueType.Forbidden, $"The access token lacks scope {scope}");
    }

    public static Task WriteForbiddenAsync(HttpContext context, string diagnostics)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return WriteOutcomeAsync(context, OperationOutcome.IssueType.Forbidden, diagnostics);
    }

    /// <summary>503: proofs cannot be checked for replay right now (the shared replay cache is unreachable).</summary>
    public static Task WriteUnavailableAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = "5";
        return WriteOutcomeAsync(context, OperationOutcome.IssueType.Transient,
            "The service cannot check DPoP proofs right now. Nothing was done; retry later.");
    }

    /// <summary>429: the client sent more new DPoP proofs than its share; other clients are unaffected.</summary>
    public static Task WriteTooManyProofsAsync(HttpContext context, int retryAfterSeconds)
    {
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        context.Response.Headers.RetryAfter = retryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteOutcomeAsync(context, OperationOutcome.IssueType.Throttled,
            "This client is sending more requests than its share. Nothing was done; retry after the indicated time.");
    }

    private static Task WriteOutcomeAsync(HttpContext context, OperationOutcome.IssueType code, string diagnostics)
    {
        context.Response.Headers.CacheControl = "no-store";
        return FhirResults.WriteAsync(context, Outcomes.Error(code, diagnostics), context.Response.StatusCode);
    }

    private static string Quote(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
