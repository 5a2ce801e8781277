using System.Text.Json.Nodes;
using Microsoft.OpenApi;

namespace Pit.Server.Fhir.OpenApi;

/// <summary>
/// The JSON schemas of the FHIR resources the API exchanges, as components of the OpenAPI document. FHIR's model
/// is far larger than what this API uses, so each schema names the fields clients meet here and points to the
/// FHIR R4 specification for the rest.
/// </summary>
internal static class FhirSchemas
{
    public static void AddTo(OpenApiDocument document)
    {
        document.Components ??= new OpenApiComponents();
        document.Components.Schemas ??= new Dictionary<string, IOpenApiSchema>();
        var schemas = document.Components.Schemas;
        schemas["OperationOutcome"] = OperationOutcome();
        schemas["Patient"] = Patient();
        schemas["Bundle"] = Bundle(document);
        schemas["CapabilityStatement"] = Resource("CapabilityStatement",
            "What this server implements: FHIR R4 (4.0.1), Patient read, create and search-type, its search parameters and its security. " +
            "See https://hl7.org/fhir/R4/capabilitystatement.html.");
        schemas["StructureDefinition"] = Resource("StructureDefinition",
            "The definition of one of the provenance extensions on stored Patients (an Extension with a valueString, in meta.extension). " +
            "See https://hl7.org/fhir/R4/structuredefinition.html.");
    }

    /// <summary>A reference to the component schema of FHIR resource <paramref name="resourceType"/>.</summary>
    public static IOpenApiSchema Reference(string resourceType, OpenApiDocument document) => new OpenApiSchemaReference(resourceType, document);

    private static OpenApiSchema OperationOutcome()
    {
        var schema = Resource("OperationOutcome",
            "Every error, and every answer about a submission, is an OperationOutcome. Each issue says how bad it is (severity), what kind of " +
            "problem it is (code, a FHIR issue type such as invalid, not-found, security, transient) and, in diagnostics, what to do about it. " +
            "Answers with status 5xx name a correlation id. See https://hl7.org/fhir/R4/operationoutcome.html.");
        schema.Required!.Add("issue");
        schema.Properties!["issue"] = Array(new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Required = new HashSet<string> { "severity", "code" },
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["severity"] = Enum("fatal | error | warning | information", "fatal", "error", "warning", "information"),
                ["code"] = Text("FHIR issue type (https://hl7.org/fhir/R4/valueset-issue-type.html), e.g. invalid, structure, value, required, " +
                    "not-supported, not-found, security, login, forbidden, too-long, processing, transient, exception, informational."),
                ["diagnostics"] = Text("What went wrong or what happened, for a person to read."),
                ["expression"] = Array(Text("FHIRPath of the element or the name of the search parameter the issue is about.")),
            },
        });
        return schema;
    }

    private static OpenApiSchema Patient()
    {
        var schema = Resource("Patient",
            "A FHIR R4 Patient (https://hl7.org/fhir/R4/patient.html), parsed strictly. It needs at least one identifier whose system is a " +
            "Norwegian person identifier (fødselsnummer urn:oid:2.16.578.1.12.4.1.4.1, D-number .4.2, H-number .4.3, FH-number .4.4, " +
            "DUF-number .4.5) with a valid value. id and meta are the server's: those sent are dropped, and stored versions carry the " +
            "server's id, meta.versionId and meta.lastUpdated.");
        schema.Properties!["id"] = Text("Server-assigned logical id.");
        schema.Properties["meta"] = new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["versionId"] = Text("Version, counted from 1 per patient."),
                ["lastUpdated"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "date-time", Description = "When this version became visible (microseconds)." },
            },
        };
        schema.Properties["identifier"] = Array(new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["system"] = Text("Identifier system, e.g. urn:oid:2.16.578.1.12.4.1.4.1 (fødselsnummer)."),
                ["value"] = Text("The identifier."),
            },
        });
        return schema;
    }

    private static OpenApiSchema Bundle(OpenApiDocument document)
    {
        var schema = Resource("Bundle",
            "A searchset Bundle (https://hl7.org/fhir/R4/bundle.html): one page of Patients in _lastUpdated order. The next link, when " +
            "present, continues the search with an opaque cursor; follow it exactly as returned. An entry with search.mode 'outcome' " +
            "holds an OperationOutcome warning about ignored parameters (Prefer: handling=lenient).");
        schema.Properties!["type"] = Enum("Always searchset.", "searchset");
        schema.Properties["link"] = Array(new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["relation"] = Enum("self, or next when there are more results.", "self", "next"),
                ["url"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri" },
            },
        });
        schema.Properties["entry"] = Array(new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Properties = new Dictionary<string, IOpenApiSchema>
            {
                ["fullUrl"] = new OpenApiSchema { Type = JsonSchemaType.String, Format = "uri" },
                ["resource"] = new OpenApiSchema { OneOf = [Reference("Patient", document), Reference("OperationOutcome", document)] },
                ["search"] = new OpenApiSchema
                {
                    Type = JsonSchemaType.Object,
                    Properties = new Dictionary<string, IOpenApiSchema> { ["mode"] = Enum("match for a Patient, outcome for a warning.", "match", "outcome") },
                },
            },
        });
        return schema;
    }

    private static OpenApiSchema Resource(string resourceType, string description) => new()
    {
        Type = JsonSchemaType.Object,
        Description = description,
        Required = new HashSet<string> { "resourceType" },
        Properties = new Dictionary<string, IOpenApiSchema> { ["resourceType"] = Enum($"Always {resourceType}.", resourceType) },
        AdditionalPropertiesAllowed = true,
    };

    private static OpenApiSchema Text(string description) => new() { Type = JsonSchemaType.String, Description = description };

    private static OpenApiSchema Array(IOpenApiSchema items) => new() { Type = JsonSchemaType.Array, Items = items };

    private static OpenApiSchema Enum(string description, params string[] values) => new()
    {
        Type = JsonSchemaType.String,
        Description = description,
        Enum = [.. values.Select(v => (JsonNode)JsonValue.Create(v))],
    };
}
