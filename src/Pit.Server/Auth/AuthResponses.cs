using System.Text;
using System.Text.Json;

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
    public const string FhirJson = "application/fhir+json; charset=utf-8";

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
        return WriteOutcomeAsync(context, error is null ? "login" : "security", diagnostics);
    }

    public static Task WriteInsufficientScopeAsync(HttpContext context, string algorithms, string scope)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        context.Response.Headers.WWWAuthenticate =
            $"DPoP error=\"insufficient_scope\", error_description=\"The access token lacks scope {scope}\", scope=\"{scope}\", algs=\"{algorithms}\"";
        return WriteOutcomeAsync(context, "forbidden", $"The access token lacks scope {scope}");
    }

    public static Task WriteForbiddenAsync(HttpContext context, string diagnostics)
    {
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return WriteOutcomeAsync(context, "forbidden", diagnostics);
    }

    private static async Task WriteOutcomeAsync(HttpContext context, string code, string diagnostics)
    {
        context.Response.ContentType = FhirJson;
        context.Response.Headers.CacheControl = "no-store";
        await using var writer = new Utf8JsonWriter(context.Response.Body);
        writer.WriteStartObject();
        writer.WriteString("resourceType", "OperationOutcome");
        writer.WriteStartArray("issue");
        writer.WriteStartObject();
        writer.WriteString("severity", "error");
        writer.WriteString("code", code);
        writer.WriteString("diagnostics", diagnostics);
        writer.WriteEndObject();
        writer.WriteEndArray();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    private static string Quote(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
