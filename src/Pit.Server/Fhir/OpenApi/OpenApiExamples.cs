using System.Text.Json.Nodes;
using Pit.Security;
using Pit.Server.Patients;
using Pit.Server.Upsert;

namespace Pit.Server.Fhir.OpenApi;

/// <summary>
/// The examples the reference page shows: a Patient the server accepts (a synthetic fødselsnummer from the rules
/// the server validates with) and the searchset Bundle it comes back in. Tests parse both with Firely's strict
/// parser and submit the Patient.
/// </summary>
internal static class OpenApiExamples
{
    /// <summary>A Patient as an integrator submits it: no id, no meta.</summary>
    public static JsonObject Patient() => new()
    {
        ["resourceType"] = "Patient",
        ["identifier"] = new JsonArray(new JsonObject
        {
            ["system"] = NorwegianIdentifiers.Fnr,
            ["value"] = NorwegianIdentityNumbers.Synthetic(new DateOnly(1985, 3, 14)),
        }),
        ["active"] = true,
        ["name"] = new JsonArray(new JsonObject { ["use"] = "official", ["family"] = "Solberg", ["given"] = new JsonArray("Ingrid") }),
        ["telecom"] = new JsonArray(new JsonObject { ["system"] = "phone", ["value"] = "+4791234567", ["use"] = "mobile" }),
        ["gender"] = "female",
        ["birthDate"] = "1985-03-14",
        ["address"] = new JsonArray(new JsonObject
        {
            ["use"] = "home",
            ["line"] = new JsonArray("Storgata 1"),
            ["postalCode"] = "0155",
            ["city"] = "Oslo",
            ["country"] = "NO",
        }),
    };

    /// <summary>A page of the change feed holding that Patient as stored, with the links a client follows.</summary>
    /// <param name="baseUrl">The server's public base URL, without trailing slash.</param>
    public static JsonObject SearchBundle(string baseUrl)
    {
        var stored = Patient();
        stored["id"] = "7f9c2b1e-4d3a-4c8b-9e1f-2a6b5c4d3e2f";
        stored["meta"] = new JsonObject
        {
            ["versionId"] = "1",
            ["lastUpdated"] = "2026-01-15T09:30:12.345678+00:00",
            ["tag"] = new JsonArray(new JsonObject { ["system"] = PatientJson.OrganisationSystem, ["code"] = "974762501" }),
        };
        var search = $"{baseUrl}/v1/Patient?_lastUpdated=gt2026-01-15T09:00:00Z&_count=1";
        return new JsonObject
        {
            ["resourceType"] = "Bundle",
            ["type"] = "searchset",
            ["link"] = new JsonArray(
                new JsonObject { ["relation"] = "self", ["url"] = search },
                new JsonObject { ["relation"] = "next", ["url"] = $"{baseUrl}/v1/Patient?cursor=AQAAAGV4YW1wbGUtY3Vyc29y&_count=1" }),
            ["entry"] = new JsonArray(new JsonObject
            {
                ["fullUrl"] = $"{baseUrl}/v1/Patient/{stored["id"]}",
                ["resource"] = stored,
                ["search"] = new JsonObject { ["mode"] = "match" },
            }),
        };
    }
}
