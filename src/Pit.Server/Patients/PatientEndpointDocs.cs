using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Pit.Server.Fhir;
using Pit.Server.Fhir.OpenApi;
using Pit.Server.Upsert;

namespace Pit.Server.Patients;

/// <summary>
/// What the OpenAPI document says about each endpoint beyond its typed results: summary, the rules of each
/// parameter (read by the handlers from the raw query, so the generator cannot see them) and the POST body.
/// </summary>
internal static class PatientEndpointDocs
{
    private const string Tag = "Patient";

    public static RouteHandlerBuilder DescribeSubmit(this RouteHandlerBuilder endpoint) => endpoint
        .WithTags(Tag)
        .WithName("SubmitPatient")
        .WithSummary("Submit a Patient (asynchronous upsert by person identifier)")
        .WithDescription(
            "Stores the Patient durably and queues it: 202 means it will be applied. The Content-Location header holds the URL of " +
            "the submission's status (GET /v1/submissions/{id}). A Patient is matched to the stored one by its Norwegian person " +
            "identifiers; an identical resubmission creates no new version. " + ProvenanceExtensions.Description)
        .AddOpenApiOperationTransformer((operation, context, _) =>
        {
            operation.RequestBody = new OpenApiRequestBody
            {
                Required = true,
                Description = $"A FHIR R4 Patient as JSON, at most {PatientSubmissionReader.MaxBodyBytes} bytes (900 KB).",
                Content = new Dictionary<string, OpenApiMediaType>
                {
                    [FhirResults.MediaType] = new() { Schema = FhirSchemas.Reference("Patient", context.Document!) },
                    ["application/json"] = new() { Schema = FhirSchemas.Reference("Patient", context.Document!) },
                },
            };
            AddHeader(operation.Responses, "202", "Content-Location", "URL of this submission's status: GET it until it is no longer 202.");
            return Task.CompletedTask;
        });

    public static RouteHandlerBuilder DescribeSearch(this RouteHandlerBuilder endpoint) => endpoint
        .WithTags(Tag)
        .WithName("SearchPatients")
        .WithSummary("Search Patients by _lastUpdated: the change feed")
        .WithDescription(
            "A page of the caller's organisation's Patients in _lastUpdated order (oldest first unless _sort=-_lastUpdated). " +
            "The feed is gap-free: a row becomes visible only after every row with an earlier _lastUpdated. Continue with the " +
            "Bundle's next link until there is none; poll with _lastUpdated=gt<the last meta.lastUpdated seen> (never misses a version; " +
            "repeats some only if the value lost fractional digits). With 'Prefer: wait=N' a " +
            "search whose page would be empty is held until a matching Patient becomes visible (then answered at once) or N seconds " +
            "pass (then answered with an empty Bundle): long polling, so a consumer hears of news without polling in a loop.")
        .AddOpenApiOperationTransformer((operation, _, _) =>
        {
            operation.Parameters ??= [];
            operation.Parameters.Add(Query("_lastUpdated",
                "Filter on when a version became visible. A prefix gt, ge, lt or le is required, then an instant with at least " +
                "minute precision and a time zone (Z or ±hh:mm), e.g. ge2024-01-01T12:00Z or gt2024-01-01T12:00:00.123456+01:00. " +
                "FHIR range semantics: the value denotes the whole interval of its precision (gt2024-01-01T12:00Z means from 12:01), " +
                "except for resuming: stamps have six fractional digits, and a gt value with seconds but fewer than six (a copy of " +
                "meta.lastUpdated that a date library truncated, rounded or stripped of trailing zeros) means after the value minus one " +
                "unit of its last digit (gt2024-01-01T12:00:53.004Z: after 12:00:53.003; gt2024-01-01T12:00:53Z: after 12:00:52), so " +
                "resuming with such a copy never skips a version and repeats only those stamped after that point. With six or more digits gt means " +
                "after exactly that instant. " +
                "May appear twice, a lower and an upper bound. Not combinable with cursor.",
                new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String, Pattern = "^(gt|ge|lt|le)\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2})$" }, MaxItems = 2 }));
            operation.Parameters.Add(Query("_count",
                $"Page size, {1} to {PatientSearchQuery.MaxCount}; default {PatientSearchQuery.DefaultCount}. With cursor, overrides the cursor's page size. " +
                "A page may hold fewer: it also ends before the Patient that would take it past the server's byte cap " +
                "(Pit:Search:MaxPageBytes, 4 MiB by default), and its next link continues there.",
                new OpenApiSchema { Type = JsonSchemaType.Integer, Minimum = "1", Maximum = PatientSearchQuery.MaxCount.ToString(System.Globalization.CultureInfo.InvariantCulture), Default = PatientSearchQuery.DefaultCount }));
            operation.Parameters.Add(Query("_sort",
                "_lastUpdated (oldest first, the default) or -_lastUpdated (newest first).",
                new OpenApiSchema { Type = JsonSchemaType.String, Enum = ["_lastUpdated", "-_lastUpdated"], Default = "_lastUpdated" }));
            operation.Parameters.Add(Query("cursor",
                "Opaque continuation from a Bundle's next link; use it exactly as returned, with the same credentials. It carries the " +
                "filter and sort of the search it continues, so it cannot be combined with _lastUpdated or _sort changes.",
                new OpenApiSchema { Type = JsonSchemaType.String, MinLength = 1 }));
            operation.Parameters.Add(new OpenApiParameter
            {
                Name = "Prefer",
                In = ParameterLocation.Header,
                Description = "Comma-separated preferences (RFC 7240). handling=lenient: unknown search parameters are ignored (and listed in " +
                    "an OperationOutcome entry of the Bundle) instead of refused with 400 (the default, handling=strict). wait=N (seconds): when " +
                    "the page would be empty, hold the request until a matching Patient becomes visible or N seconds pass, then answer what " +
                    "the same search returns at that moment (same paging and cursor rules; with a cursor too). N above the server's maximum " +
                    "(Pit:Feed:MaxWait, at most and by default 30 s) is shortened to it. A client may have a few searches waiting at once " +
                    "(Pit:Feed:MaxWaitersPerClient, default 4); more are answered at once without waiting, and without Preference-Applied. " +
                    "A wait that is not a whole number is refused with 400 under handling=strict and ignored (with a warning) under lenient.",
                Schema = new OpenApiSchema { Type = JsonSchemaType.String },
                Examples = new Dictionary<string, IOpenApiExample>
                {
                    ["lenient"] = new OpenApiExample { Value = "handling=lenient" },
                    ["longPoll"] = new OpenApiExample { Value = "wait=20" },
                    ["both"] = new OpenApiExample { Value = "handling=lenient, wait=20" },
                },
            });
            AddHeader(operation.Responses, "200", "Preference-Applied", "wait=N when the search was allowed to wait, N being the seconds it could be held.");
            return Task.CompletedTask;
        });

    public static RouteHandlerBuilder DescribeRead(this RouteHandlerBuilder endpoint) => endpoint
        .WithTags(Tag)
        .WithName("ReadPatient")
        .WithSummary("Read the current version of a Patient")
        .WithDescription(
            "The Patient's current version, with ETag W/\"<version>\" and Last-Modified. 404 when unknown or of another organisation. " +
            ProvenanceExtensions.Description)
        .AddOpenApiOperationTransformer((operation, _, _) =>
        {
            Describe(operation, "id", "The Patient's logical id: 1-64 characters of A-Z, a-z, 0-9, '-' and '.'.");
            AddHeader(operation.Responses, "200", "ETag", "W/\"<versionId>\"");
            AddHeader(operation.Responses, "200", "Last-Modified", "When this version became visible.");
            return Task.CompletedTask;
        });

    public static RouteHandlerBuilder DescribeStatus(this RouteHandlerBuilder endpoint) => endpoint
        .WithTags("Submission")
        .WithName("SubmissionStatus")
        .WithSummary("The status of a submission")
        .WithDescription(
            "202 while queued (with Retry-After), 200 once processed (Location points at the Patient; the OperationOutcome says whether " +
            "a new version was stored, it was identical, or a later submission had already been applied), 422 when it failed.")
        .AddOpenApiOperationTransformer((operation, _, _) =>
        {
            Describe(operation, "id", "The submission id, the last segment of the 202's Content-Location.");
            AddHeader(operation.Responses, "202", "Retry-After", "Seconds to wait before asking again.");
            AddHeader(operation.Responses, "200", "Location", "URL of the Patient.");
            return Task.CompletedTask;
        });

    private static OpenApiParameter Query(string name, string description, OpenApiSchema schema) =>
        new() { Name = name, In = ParameterLocation.Query, Description = description, Schema = schema };

    private static void Describe(OpenApiOperation operation, string name, string description)
    {
        foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
        {
            if (parameter.Name == name)
            {
                parameter.Description = description;
            }
        }
    }

    // Response headers can only be added once the responses exist; FhirOperationTransformer writes them first.
    private static void AddHeader(OpenApiResponses? responses, string status, string name, string description)
    {
        if (responses?.TryGetValue(status, out var found) == true && found is OpenApiResponse response)
        {
            response.Headers ??= new Dictionary<string, IOpenApiHeader>();
            response.Headers[name] = new OpenApiHeader { Description = description, Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
        }
    }
}
