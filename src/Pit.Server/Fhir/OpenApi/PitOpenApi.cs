using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Pit.Server.Auth;
using Scalar.AspNetCore;

namespace Pit.Server.Fhir.OpenApi;

/// <summary>
/// The API reference: the OpenAPI document at <c>/openapi/v1.json</c> and a browsable page at <c>/docs</c>, both
/// anonymous and both served entirely by this server (a hospital network may have no way out to a CDN).
/// </summary>
internal static class PitOpenApi
{
    public const string DocumentName = "v1";

    /// <summary>The security scheme of <c>Authorization: DPoP &lt;access token&gt;</c>.</summary>
    public const string TokenScheme = "DPoP";

    /// <summary>The security scheme of the <c>DPoP</c> proof header.</summary>
    public const string ProofScheme = "DPoPProof";

    public static IServiceCollection AddPitOpenApi(this IServiceCollection services) =>
        services.AddOpenApi(DocumentName, options =>
        {
            options.AddDocumentTransformer<PitDocumentTransformer>();
            options.AddOperationTransformer<FhirOperationTransformer>();
        });

    public static WebApplication MapPitReference(this WebApplication app)
    {
        app.MapOpenApi().AllowAnonymous();
        app.MapScalarApiReference("/docs", options => options
            .WithTitle("PIT-API reference")
            .WithOpenApiRoutePattern("/openapi/{documentName}.json")
            .AddDocument(DocumentName)
            .DisableDefaultFonts()
            .DisableTelemetry()
            .DisableAgent()
            .DisableMcp()
            .HideClientButton()
            .HideDeveloperTools())
            .AllowAnonymous();
        return app;
    }

    private sealed class PitDocumentTransformer : IOpenApiDocumentTransformer
    {
        public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
        {
            document.Info = new OpenApiInfo
            {
                Title = "PIT-API (Pasientinformasjonstjenesten)",
                Version = "v1",
                Description =
                    "FHIR R4 patient information service. Submissions (POST /v1/Patient) are durable when answered 202 and applied " +
                    "asynchronously; their status is at the Content-Location URL. GET /v1/Patient is a gap-free change feed in " +
                    "_lastUpdated order, continued with the Bundle's next link. Every request needs a HelseID access token bound " +
                    "with DPoP (RFC 9449); every error is an OperationOutcome.",
            };
            document.Servers = [];
            FhirSchemas.AddTo(document);
            document.Components!.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
            {
                [TokenScheme] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.Http,
                    Scheme = "DPoP",
                    BearerFormat = "JWT",
                    Description =
                        $"'Authorization: DPoP <access token>': a HelseID access token (audience nhn:pit) bound to the client's DPoP key " +
                        $"(cnf.jkt), with claim {HelseIdClaims.OrgnrParent}. Scopes: {PitAuthSetup.ReadScope} to read, " +
                        $"{PitAuthSetup.WriteScope} to submit and to read submission status. Bearer is refused.",
                },
                [ProofScheme] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.ApiKey,
                    In = ParameterLocation.Header,
                    Name = "DPoP",
                    Description =
                        "A fresh DPoP proof JWT (RFC 9449) for every request: typ dpop+jwt, the public key in jwk, htm and htu of this " +
                        "request, a unique jti, iat, and ath (hash of the access token). When a 401 carries DPoP-Nonce, put it in the proof's nonce.",
                },
            };
            return Task.CompletedTask;
        }
    }
}
