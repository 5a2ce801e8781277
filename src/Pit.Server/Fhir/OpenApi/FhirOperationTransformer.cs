using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Pit.Server.Auth;

namespace Pit.Server.Fhir.OpenApi;

/// <summary>
/// Writes each operation's responses from what its typed results declare (<see cref="FhirResponseMetadata"/>),
/// every body an application/fhir+json resource, and adds what the generator cannot see: the answers of the
/// authentication, content negotiation and error handling around the handler, and the DPoP security requirement
/// with the scope of the endpoint's policy.
/// </summary>
internal sealed class FhirOperationTransformer : IOpenApiOperationTransformer
{
    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        var metadata = context.Description.ActionDescriptor.EndpointMetadata;
        var declared = metadata.OfType<FhirResponseMetadata>().ToList();
        if (declared.Count == 0)
        {
            return Task.CompletedTask;
        }

        var document = context.Document!;
        var policy = metadata.OfType<IAuthorizeData>().Select(a => a.Policy).LastOrDefault(p => p is not null);
        var scope = policy switch
        {
            PitPolicies.Read => PitAuthSetup.ReadScope,
            PitPolicies.Write => PitAuthSetup.WriteScope,
            _ => null,
        };

        var responses = new SortedDictionary<int, string>();
        foreach (var response in declared)
        {
            responses[response.StatusCode] = response.ResourceType;
        }

        if (scope is not null)
        {
            responses[StatusCodes.Status401Unauthorized] = "OperationOutcome";
            responses[StatusCodes.Status403Forbidden] = "OperationOutcome";
            responses[StatusCodes.Status429TooManyRequests] = "OperationOutcome";
            responses[StatusCodes.Status503ServiceUnavailable] = "OperationOutcome";
            operation.Security = [new OpenApiSecurityRequirement
            {
                [new OpenApiSecuritySchemeReference(PitOpenApi.TokenScheme, document)] = [scope],
                [new OpenApiSecuritySchemeReference(PitOpenApi.ProofScheme, document)] = [],
            }];
        }

        if (responses.ContainsKey(StatusCodes.Status406NotAcceptable))
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = "_format",
                In = ParameterLocation.Query,
                Description = "Optional. json, application/json or application/fhir+json; any other format (xml) is refused with 406. " +
                    "Without it, the Accept header decides: it must allow application/fhir+json, application/json or */*.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
            });
        }

        responses[StatusCodes.Status500InternalServerError] = "OperationOutcome";
        operation.Responses = new OpenApiResponses();
        foreach (var (status, resourceType) in responses)
        {
            operation.Responses[status.ToString(System.Globalization.CultureInfo.InvariantCulture)] = Response(document, status, resourceType, scope);
        }

        return Task.CompletedTask;
    }

    private static OpenApiResponse Response(OpenApiDocument document, int status, string resourceType, string? scope)
    {
        var response = new OpenApiResponse
        {
            Description = Describe(status, resourceType, scope),
            Content = new Dictionary<string, OpenApiMediaType>
            {
                [FhirResults.MediaType] = new() { Schema = FhirSchemas.Reference(resourceType, document) },
            },
        };
        var headers = status switch
        {
            StatusCodes.Status401Unauthorized => new Dictionary<string, IOpenApiHeader>
            {
                ["WWW-Authenticate"] = Header("DPoP challenge (RFC 9449 §7.1): error, error_description and the accepted proof algorithms (algs)."),
                ["DPoP-Nonce"] = Header("When error is use_dpop_nonce: the nonce to put in the next proof."),
            },
            StatusCodes.Status403Forbidden => new Dictionary<string, IOpenApiHeader>
            {
                ["WWW-Authenticate"] = Header("For a missing scope: DPoP error=\"insufficient_scope\" with the scope required."),
            },
            StatusCodes.Status429TooManyRequests => new Dictionary<string, IOpenApiHeader>
            {
                ["Retry-After"] = Header("Seconds to wait before the next request."),
            },
            StatusCodes.Status503ServiceUnavailable => new Dictionary<string, IOpenApiHeader>
            {
                ["Retry-After"] = Header($"Seconds to wait before retrying ({PitProblem.RetryAfterSeconds})."),
            },
            _ => null,
        };
        if (headers is not null)
        {
            response.Headers = headers;
        }

        return response;
    }

    private static string Describe(int status, string resourceType, string? scope) => status switch
    {
        StatusCodes.Status200OK => $"OK: a {resourceType}.",
        StatusCodes.Status202Accepted => "Accepted: an OperationOutcome saying what happens next.",
        StatusCodes.Status400BadRequest => "The request is invalid; the OperationOutcome lists every problem found.",
        StatusCodes.Status401Unauthorized =>
            "No valid HelseID access token with a matching DPoP proof (missing, expired, wrong audience, replayed or mismatched proof, nonce required).",
        StatusCodes.Status403Forbidden =>
            $"The access token lacks scope {scope} or claim {HelseIdClaims.OrgnrParent} with a valid organisation number.",
        StatusCodes.Status404NotFound => "Not known, or not visible to the caller's organisation.",
        StatusCodes.Status406NotAcceptable => "The request accepts only formats other than FHIR JSON (Accept or _format).",
        StatusCodes.Status413PayloadTooLarge => "The body is larger than 900 KB.",
        StatusCodes.Status415UnsupportedMediaType => "The body is not application/fhir+json or application/json in UTF-8.",
        StatusCodes.Status422UnprocessableEntity => "The submission was processed and failed; the OperationOutcome says why.",
        StatusCodes.Status429TooManyRequests =>
            "Too many requests from this client (client_id + orgnr_parent): over its rate limit or its share of the DPoP replay check. " +
            "Nothing was done; wait Retry-After seconds. Other clients are not affected.",
        StatusCodes.Status500InternalServerError => "An unexpected error; the OperationOutcome names the correlation id the server logged it under.",
        StatusCodes.Status503ServiceUnavailable =>
            "The store or the DPoP replay check cannot be reached, or the submission queue is full; nothing was done. Retry after Retry-After seconds.",
        _ => $"Status {status}.",
    };

    private static OpenApiHeader Header(string description) => new() { Description = description, Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
}
