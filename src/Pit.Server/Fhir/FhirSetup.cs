using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Http.HttpResults;
using Pit.Server.Upsert;

namespace Pit.Server.Fhir;

internal static class FhirSetup
{
    public static IServiceCollection AddPitFhir(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PitOptions>().Bind(configuration.GetSection("Pit"))
            .Validate(o => o.PublicBaseUrl is null || Uri.TryCreate(o.PublicBaseUrl, UriKind.Absolute, out _),
                "Pit:PublicBaseUrl must be an absolute URL.")
            .ValidateOnStart();
        services.AddSingleton<FhirJson>();
        services.AddSingleton<PublicBaseUrl>();
        services.AddSingleton<CapabilityStatementSource>();
        services.AddSingleton<StructureDefinitionSource>();
        services.AddPitFhirErrors();
        // Which proxies may set the public URL: Auth/TrustedProxies.cs.
        return services;
    }

    /// <summary>Applies <c>X-Forwarded-*</c> from the configured proxies.</summary>
    public static WebApplication UsePitForwardedHeaders(this WebApplication app)
    {
        app.UseForwardedHeaders();
        return app;
    }

    public static WebApplication MapPitMetadata(this WebApplication app)
    {
        app.MapGet("/v1/metadata", (HttpContext context, CapabilityStatementSource source) =>
            FhirResults.Ok<CapabilityStatement>(source.Get(context))).AllowAnonymous()
            .WithTags("Server").WithName("Metadata").WithSummary("The CapabilityStatement: what this server implements")
            .WithDescription("FHIR R4 CapabilityStatement listing Patient read, create and search-type with the search parameters; no authentication.");

        // Conformance resources hold no patient or tenant data: like the CapabilityStatement, anyone may read them.
        app.MapGet("/v1/StructureDefinition/{id}", ReadStructureDefinition).AllowAnonymous()
            .WithTags("Server").WithName("StructureDefinition").WithSummary("A StructureDefinition this server publishes")
            .WithDescription("The definitions of the provenance extensions every stored Patient carries in meta.extension (" +
                ProvenanceExtensions.Namespace + "{id}), for validators; no authentication.");
        return app;
    }

    private static Results<FhirOk<StructureDefinition>, FhirProblem<ProblemStatus.NotFound>> ReadStructureDefinition(string id, StructureDefinitionSource source) =>
        source.Get(id) is { } json
            ? FhirResults.Ok<StructureDefinition>(json)
            : new FhirProblem<ProblemStatus.NotFound>(PitProblem.Error(StatusCodes.Status404NotFound, OperationOutcome.IssueType.NotFound,
                $"StructureDefinition/{id} is not published by this server."));
}
