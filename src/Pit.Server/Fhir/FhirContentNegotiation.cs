using Hl7.Fhir.Model;
using Microsoft.Net.Http.Headers;

namespace Pit.Server.Fhir;

/// <summary>Only FHIR JSON is offered: a request that accepts nothing else (or asks for XML by _format) gets 406.</summary>
internal static class FhirContentNegotiation
{
    /// <summary>Adds the filter to every endpoint of <paramref name="group"/> and declares its 406.</summary>
    public static RouteGroupBuilder NegotiateFhirJson(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(Filter).WithMetadata(new FhirResponseMetadata(StatusCodes.Status406NotAcceptable, FhirResults.TypeName<OperationOutcome>()));
        return group;
    }

    private static async ValueTask<object?> Filter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var request = invocation.HttpContext.Request;
        if (!AcceptsJson(request))
        {
            return PitProblem.Error(StatusCodes.Status406NotAcceptable, OperationOutcome.IssueType.NotSupported,
                "Only FHIR JSON is offered: accept application/fhir+json (or application/json).");
        }

        return await next(invocation);
    }

    private static bool AcceptsJson(HttpRequest request)
    {
        var format = request.Query["_format"];
        if (format.Count > 0)
        {
            return format.All(f => f is "json" or "application/json" or "application/fhir+json");
        }

        var accept = request.Headers.Accept;
        if (accept.Count == 0 || !MediaTypeHeaderValue.TryParseList(accept, out var types) || types.Count == 0)
        {
            return true;
        }

        return types.Any(t => t.Quality is not 0 && t.MediaType.Value is "*/*" or "application/*" or "application/json" or "application/fhir+json");
    }
}
