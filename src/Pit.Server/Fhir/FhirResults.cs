using Hl7.Fhir.Model;

namespace Pit.Server.Fhir;

/// <summary>Writes FHIR JSON responses.</summary>
public static class FhirResults
{
    /// <summary>The content type of every FHIR response.</summary>
    public const string ContentType = "application/fhir+json; charset=utf-8";

    /// <summary>Raw, ready-to-send FHIR JSON.</summary>
    public static IResult Json(byte[] json, int status = StatusCodes.Status200OK) => new FhirJsonResult(json, status);

    /// <summary>A resource serialised on the way out.</summary>
    public static IResult Resource(HttpContext context, Resource resource, int status = StatusCodes.Status200OK) =>
        Json(context.RequestServices.GetRequiredService<FhirJson>().Serialize(resource), status);

    /// <summary>An OperationOutcome with an error issue.</summary>
    public static IResult Problem(HttpContext context, int status, OperationOutcome.IssueType code, string diagnostics, params string[] expression) =>
        Resource(context, Outcomes.Error(code, diagnostics, expression), status);

    /// <summary>Writes an OperationOutcome directly (for middleware, outside endpoint results).</summary>
    public static async System.Threading.Tasks.Task WriteAsync(HttpContext context, OperationOutcome outcome, int status)
    {
        var json = context.RequestServices.GetRequiredService<FhirJson>().Serialize(outcome);
        context.Response.StatusCode = status;
        context.Response.ContentType = ContentType;
        context.Response.ContentLength = json.Length;
        await context.Response.Body.WriteAsync(json, context.RequestAborted);
    }
}

/// <summary>Ready-to-send FHIR JSON with a status code.</summary>
internal sealed class FhirJsonResult(byte[] json, int status) : IResult
{
    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext)
    {
        httpContext.Response.StatusCode = status;
        httpContext.Response.ContentType = FhirResults.ContentType;
        httpContext.Response.ContentLength = json.Length;
        return httpContext.Response.Body.WriteAsync(json, httpContext.RequestAborted).AsTask();
    }
}
