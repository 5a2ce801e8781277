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

    /// <summary>
    /// The security scheme of <c>Authorization: DPoP &lt;access token&gt;</c>. An apiKey header scheme rather than an http
    /// scheme: reference pages know only Basic and Bearer among http schemes (Scalar shows an unknown one as Basic),
    /// while an apiKey scheme sends its value as given, here with the <c>DPoP </c> prefix.
    /// </summary>
    public const string TokenScheme = "DPoP";

    /// <summary>The security scheme of the <c>DPoP</c> proof header.</summary>
    public const string ProofScheme = "DPoPProof";

    /// <summary>
    /// What the reference page puts in the Authorization header until the reader enters a token. One space only: the C#
    /// example splits the value at its first space into scheme and token.
    /// </summary>
    public const string TokenPlaceholder = "DPoP <access-token>";

    /// <summary>What the reference page puts in the DPoP header until the reader enters a proof.</summary>
    public const string ProofPlaceholder = "<DPoP proof JWT>";

    /// <summary>Where the document's description sends readers to learn how to get a token and make proofs.</summary>
    public const string AuthenticationGuide = "docs/AUTHENTICATION.md";

    public static IServiceCollection AddPitOpenApi(this IServiceCollection services)
    {
        services.AddHttpContextAccessor();
        return services.AddOpenApi(DocumentName, options =>
        {
            options.AddDocumentTransformer<PitDocumentTransformer>();
            options.AddOperationTransformer<FhirOperationTransformer>();
        });
    }

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
            // Both headers are needed together (one security requirement); preselected, so every example carries them.
            .AddPreferredSecuritySchemes(TokenScheme, ProofScheme)
            .AddApiKeyAuthentication(TokenScheme, scheme => scheme.Value = TokenPlaceholder)
            .AddApiKeyAuthentication(ProofScheme, scheme => scheme.Value = ProofPlaceholder)
            .WithDefaultHttpClient(ScalarTarget.CSharp, ScalarClient.HttpClient)
            .WithFeaturedClients(
                new(ScalarTarget.CSharp, ScalarClient.HttpClient),
                new(ScalarTarget.Shell, ScalarClient.Curl),
                new(ScalarTarget.Http, ScalarClient.Http11),
                new(ScalarTarget.Python, ScalarClient.Requests),
                new(ScalarTarget.Java, ScalarClient.HttpClient))
            .HideClientButton()
            .HideDeveloperTools())
            .AllowAnonymous();
        return app;
    }

    private sealed class PitDocumentTransformer : IOpenApiDocumentTransformer
    {
        public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
        {
            var http = context.ApplicationServices.GetRequiredService<IHttpContextAccessor>().HttpContext;
            var baseUrl = http is null ? null : context.ApplicationServices.GetRequiredService<PublicBaseUrl>().For(http.Request);
            document.Info = new OpenApiInfo
            {
                Title = "PIT-API (Pasientinformasjonstjenesten)",
                Version = "v1",
                Description =
                    "FHIR R4 patient information service. Submissions (POST /v1/Patient) are durable when answered 202 and applied " +
                    "asynchronously; their status is at the Content-Location URL. GET /v1/Patient is a gap-free change feed in " +
                    "_lastUpdated order, continued with the Bundle's next link. Every error is an OperationOutcome.\n\n" +
                    "**Authentication.** Every /v1 request needs two headers: `Authorization: DPoP <access token>`, a HelseID access " +
                    "token got with the client-credentials grant (a private_key_jwt client assertion and a DPoP proof on the token " +
                    "request), and `DPoP: <proof JWT>`, a fresh proof signed with the same key for each request (RFC 9449). `Bearer` is " +
                    "refused. The examples below show where both go; .NET clients get both from the Pit.Client library, and the `pit` " +
                    $"CLI and dev/helseid-standin/dpop-curl.sh make them for trying things out. How to authenticate, step by step: {AuthenticationGuide} " +
                    "in the repository.",
            };
            document.Servers = baseUrl is null ? [] : [new OpenApiServer { Url = baseUrl, Description = "This server (Pit:PublicBaseUrl, or the address the request came to)" }];
            FhirSchemas.AddTo(document);
            document.Components!.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
            {
                [TokenScheme] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.ApiKey,
                    In = ParameterLocation.Header,
                    Name = "Authorization",
                    Description =
                        $"`Authorization: DPoP <access token>` (the value includes the word DPoP and a space): a HelseID access token " +
                        $"(audience nhn:pit) bound to the client's DPoP key (cnf.jkt), with claim {HelseIdClaims.OrgnrParent}. Scopes: " +
                        $"{PitAuthSetup.ReadScope} to read, {PitAuthSetup.WriteScope} to submit and to read submission status. Bearer is refused. " +
                        $"Send it together with the DPoP proof header. See {AuthenticationGuide}.",
                },
                [ProofScheme] = new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.ApiKey,
                    In = ParameterLocation.Header,
                    Name = "DPoP",
                    Description =
                        "`DPoP: <proof JWT>`: a fresh DPoP proof (RFC 9449) for every request: typ dpop+jwt, the public key in jwk, htm " +
                        "and htu of this request (htu without query), a unique jti, iat, and ath (base64url SHA-256 of the access token). " +
                        "When a 401 carries DPoP-Nonce, put it in the proof's nonce.",
                },
            };
            AddExamples(document, baseUrl ?? "https://api.pit.test.nhn.no");
            return Task.CompletedTask;
        }

        // The operation transformers have written each body by now; the examples only fill them in.
        private static void AddExamples(OpenApiDocument document, string baseUrl)
        {
            foreach (var (path, item) in document.Paths)
            {
                if (path != "/v1/Patient" || item.Operations is null)
                {
                    continue;
                }

                if (item.Operations.TryGetValue(HttpMethod.Post, out var post) && post.RequestBody?.Content is { } request)
                {
                    foreach (var media in request.Values)
                    {
                        media.Example = OpenApiExamples.Patient();
                    }
                }

                if (item.Operations.TryGetValue(HttpMethod.Get, out var search)
                    && search.Responses?.TryGetValue("200", out var ok) == true && ok.Content is { } content)
                {
                    foreach (var media in content.Values)
                    {
                        media.Example = OpenApiExamples.SearchBundle(baseUrl);
                    }
                }
            }
        }
    }
}
