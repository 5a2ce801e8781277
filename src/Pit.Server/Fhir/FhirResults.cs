using System.Reflection;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Http.Metadata;

namespace Pit.Server.Fhir;

/// <summary>Writes FHIR JSON responses.</summary>
internal static class FhirResults
{
    /// <summary>The media type of every FHIR response and request body.</summary>
    public const string MediaType = "application/fhir+json";

    /// <summary>The content type of every FHIR response.</summary>
    public const string ContentType = MediaType + "; charset=utf-8";

    /// <summary>The one place a FHIR JSON body is written: status, content type, length, bytes.</summary>
    public static System.Threading.Tasks.Task WriteJsonAsync(HttpContext context, byte[] json, int status)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = ContentType;
        context.Response.ContentLength = json.Length;
        return context.Response.Body.WriteAsync(json, context.RequestAborted).AsTask();
    }

    /// <summary>
    /// The one place a streamed FHIR JSON body is written: status and content type, then <paramref name="write"/>
    /// writes to the response's <see cref="System.IO.Pipelines.PipeWriter"/> as it goes (chunked, no length known ahead).
    /// </summary>
    public static System.Threading.Tasks.Task WriteJsonStreamAsync(
        HttpContext context, Func<System.IO.Pipelines.PipeWriter, CancellationToken, System.Threading.Tasks.Task> write, int status)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = ContentType;
        return write(context.Response.BodyWriter, context.RequestAborted);
    }

    /// <summary>200 with FHIR JSON of a <typeparamref name="TResource"/> written by <paramref name="write"/> straight to the response.</summary>
    public static FhirOkStream<TResource> OkStream<TResource>(Func<System.IO.Pipelines.PipeWriter, CancellationToken, System.Threading.Tasks.Task> write)
        where TResource : Resource => new(write);

    /// <summary>200 with ready-to-send FHIR JSON of a <typeparamref name="TResource"/>.</summary>
    public static FhirOk<TResource> Ok<TResource>(byte[] json)
        where TResource : Resource => new(json);

    /// <summary>200 with <paramref name="resource"/>, serialised on the way out.</summary>
    public static FhirOk<TResource> Ok<TResource>(HttpContext context, TResource resource)
        where TResource : Resource => new(Serialize(context, resource));

    /// <summary>202 with ready-to-send FHIR JSON of a <typeparamref name="TResource"/>.</summary>
    public static FhirAccepted<TResource> Accepted<TResource>(byte[] json)
        where TResource : Resource => new(json);

    /// <summary>202 with <paramref name="resource"/>, serialised on the way out.</summary>
    public static FhirAccepted<TResource> Accepted<TResource>(HttpContext context, TResource resource)
        where TResource : Resource => new(Serialize(context, resource));

    /// <summary>The FHIR type name (<c>Patient</c>, <c>Bundle</c>, ...) of <typeparamref name="TResource"/>.</summary>
    public static string TypeName<TResource>()
        where TResource : Resource => ModelInfo.GetFhirTypeNameForType(typeof(TResource)) ?? typeof(TResource).Name;

    private static byte[] Serialize(HttpContext context, Resource resource) =>
        context.RequestServices.GetRequiredService<FhirJson>().Serialize(resource);
}

/// <summary>
/// One status an endpoint answers with and the FHIR resource in its body, as the endpoint's typed results declare
/// it; the OpenAPI document is built from these.
/// </summary>
internal sealed record FhirResponseMetadata(int StatusCode, string ResourceType);

/// <summary>200 OK with a <typeparamref name="TResource"/> in FHIR JSON.</summary>
internal sealed class FhirOk<TResource>(byte[] json) : IResult, IEndpointMetadataProvider
    where TResource : Resource
{
    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext) => FhirResults.WriteJsonAsync(httpContext, json, StatusCodes.Status200OK);

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new FhirResponseMetadata(StatusCodes.Status200OK, FhirResults.TypeName<TResource>()));
}

/// <summary>
/// 200 OK with a <typeparamref name="TResource"/> in FHIR JSON that is written to the response as it is produced
/// (a searchset Bundle, entry by entry), so a large answer never sits whole in memory.
/// </summary>
internal sealed class FhirOkStream<TResource>(Func<System.IO.Pipelines.PipeWriter, CancellationToken, System.Threading.Tasks.Task> write)
    : IResult, IEndpointMetadataProvider
    where TResource : Resource
{
    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext) => FhirResults.WriteJsonStreamAsync(httpContext, write, StatusCodes.Status200OK);

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new FhirResponseMetadata(StatusCodes.Status200OK, FhirResults.TypeName<TResource>()));
}

/// <summary>202 Accepted with a <typeparamref name="TResource"/> (an OperationOutcome saying what happens next).</summary>
internal sealed class FhirAccepted<TResource>(byte[] json) : IResult, IEndpointMetadataProvider
    where TResource : Resource
{
    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext) => FhirResults.WriteJsonAsync(httpContext, json, StatusCodes.Status202Accepted);

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new FhirResponseMetadata(StatusCodes.Status202Accepted, FhirResults.TypeName<TResource>()));
}

/// <summary>An HTTP status an endpoint can refuse with, as a type, so that <see cref="FhirProblem{TStatus}"/> declares it.</summary>
internal interface IProblemStatus
{
    static abstract int Code { get; }
}

/// <summary>The refusal statuses endpoints declare in their typed results.</summary>
internal static class ProblemStatus
{
    public sealed class BadRequest : IProblemStatus
    {
        public static int Code => StatusCodes.Status400BadRequest;
    }

    public sealed class NotFound : IProblemStatus
    {
        public static int Code => StatusCodes.Status404NotFound;
    }

    public sealed class PayloadTooLarge : IProblemStatus
    {
        public static int Code => StatusCodes.Status413PayloadTooLarge;
    }

    public sealed class UnsupportedMediaType : IProblemStatus
    {
        public static int Code => StatusCodes.Status415UnsupportedMediaType;
    }

    public sealed class UnprocessableEntity : IProblemStatus
    {
        public static int Code => StatusCodes.Status422UnprocessableEntity;
    }
}

/// <summary>A <see cref="PitProblem"/> of status <typeparamref name="TStatus"/>, as an endpoint's typed result.</summary>
internal sealed class FhirProblem<TStatus> : IResult, IEndpointMetadataProvider
    where TStatus : IProblemStatus
{
    private readonly PitProblem _problem;

    public FhirProblem(PitProblem problem)
    {
        if (problem.Status != TStatus.Code)
        {
            throw new ArgumentException($"A {typeof(TStatus).Name} problem must have status {TStatus.Code}, not {problem.Status}.", nameof(problem));
        }

        _problem = problem;
    }

    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext) => _problem.ExecuteAsync(httpContext);

    public static void PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new FhirResponseMetadata(TStatus.Code, FhirResults.TypeName<OperationOutcome>()));
}
