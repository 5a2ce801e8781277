using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Utility;

namespace Pit.Client;

/// <summary>Firely JSON settings for what the client sends and receives.</summary>
internal static class FhirJson
{
    // Lenient on input: a newer server may add elements this client does not know; that must not break reading.
    private static readonly JsonSerializerOptions Reading = new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector).UsingMode(DeserializationMode.Ostrich);
    private static readonly JsonSerializerOptions Writing = new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector);

    public const string MediaType = "application/fhir+json";

    public static T Parse<T>(string json) where T : Resource =>
        JsonSerializer.Deserialize<T>(json, Reading) ?? throw new JsonException($"Expected a {typeof(T).Name}.");

    public static string Serialize(Resource resource) => JsonSerializer.Serialize(resource, resource.GetType(), Writing);

    public static OperationOutcome? TryParseOutcome(string body)
    {
        if (string.IsNullOrWhiteSpace(body) || !body.Contains("OperationOutcome", StringComparison.Ordinal))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<Resource>(body, Reading) as OperationOutcome;
        }
        catch (Exception e) when (e is JsonException or DeserializationFailedException or InvalidCastException)
        {
            return null;
        }
    }

    public static IReadOnlyList<string> DescribeIssues(OperationOutcome? outcome)
    {
        if (outcome is null)
        {
            return [];
        }

        return [.. outcome.Issue.Select(issue =>
        {
            var text = issue.Details?.Text ?? issue.Diagnostics ?? issue.Details?.Coding.FirstOrDefault()?.Display ?? "";
            var where = issue.Expression.Any() ? $" (at {string.Join(", ", issue.Expression)})"
                : issue.Location.Any() ? $" (at {string.Join(", ", issue.Location)})" : "";
            return $"{issue.Severity?.GetLiteral() ?? "error"} [{issue.Code?.GetLiteral() ?? "unknown"}] {text}{where}".TrimEnd();
        })];
    }
}
