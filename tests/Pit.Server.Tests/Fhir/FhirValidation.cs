using System.Text.Json;
using Firely.Fhir.Validation;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Specification.Source;
using Hl7.Fhir.Specification.Terminology;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Fhir;

/// <summary>
/// Firely's validator with the FHIR R4 core specification (Hl7.Fhir.Specification.Data.R4's specification.zip)
/// and this server's published StructureDefinitions, fetched over HTTP from <c>/v1/StructureDefinition/{id}</c>.
/// An answer is checked twice: parsed by Firely's strict JSON parser (which refuses what FHIR JSON forbids, such as
/// an empty array), then validated against its resource's core profile (cardinalities, types, invariants such as
/// bdl-15). An extension whose definition cannot be resolved is an error, so a Patient's provenance extensions are
/// only valid when the server publishes their definitions.
/// </summary>
internal sealed class FhirValidation
{
    // Loading and indexing the specification takes seconds: one resolver for every test of the run.
    private static readonly Lazy<IAsyncResourceResolver> Core = new(() =>
        new CachedResolver(ZipSource.CreateValidationSource(Path.Combine(AppContext.BaseDirectory, "specification.zip"))));

    private static readonly FhirJsonDeserializer StrictParser = new(new DeserializerSettings().UsingMode(DeserializationMode.Strict));

    private readonly Validator _validator;

    private FhirValidation(IReadOnlyList<StructureDefinition> published)
    {
        Published = published;
        var resolver = new CachedResolver(new SnapshotSource(new MultiResolver(Core.Value, new InMemoryResourceResolver(published))));
        var settings = new ValidationSettings { FollowExtensionUrl = (_, _) => ExtensionUrlHandling.ErrorIfMissing };
        _validator = new Validator(resolver, LocalTerminologyService.CreateDefaultForCore(resolver), null, settings);
    }

    /// <summary>A validator that knows only the core specification.</summary>
    public static FhirValidation CoreOnly() => new([]);

    /// <summary>The server's StructureDefinitions, as it served them.</summary>
    public IReadOnlyList<StructureDefinition> Published { get; }

    /// <summary>A validator that knows the core specification and the definitions <paramref name="server"/> publishes.</summary>
    public static async Task<FhirValidation> ForAsync(TestServer server)
    {
        using var anonymous = server.CreateAnonymousClient();
        var published = new List<StructureDefinition>();
        foreach (var url in ProvenanceExtensions.All)
        {
            var id = url[ProvenanceExtensions.Namespace.Length..];
            using var response = await anonymous.GetAsync($"v1/StructureDefinition/{id}");
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"GET StructureDefinition/{id}: {(int)response.StatusCode} {text}");
            published.Add(Assert.IsType<StructureDefinition>(ParseStrict(text, $"StructureDefinition/{id}")));
        }

        return new FhirValidation(published);
    }

    /// <summary>Parses <paramref name="json"/> strictly; fails the test with every parse error.</summary>
    public static Resource ParseStrict(string json, string what)
    {
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(json));
        StrictParser.TryDeserializeResource(ref reader, out var resource, out var errors);
        var problems = (errors ?? []).Select(e => e.Message).ToList();
        Assert.True(resource is not null && problems.Count == 0,
            $"{what} is not valid FHIR JSON:{Environment.NewLine}{string.Join(Environment.NewLine, problems)}{Environment.NewLine}{Shortened(json)}");
        return resource!;
    }

    /// <summary>
    /// The issues of severity error or fatal (and warning, when <paramref name="warningsToo"/>) in
    /// <paramref name="json"/>, each as "severity code: text @ location".
    /// </summary>
    public IReadOnlyList<string> Errors(string json, string what, bool warningsToo = false)
    {
        var outcome = _validator.Validate(ParseStrict(json, what));
        return [.. outcome.Issue
            .Where(i => i.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal
                || (warningsToo && i.Severity is OperationOutcome.IssueSeverity.Warning))
            .Select(i => $"{i.Severity} {i.Code}: {i.Details?.Text ?? i.Diagnostics} @ {string.Join(", ", i.Expression)}")];
    }

    /// <summary>
    /// Asserts that every answer in <paramref name="answers"/> (what it is → its JSON) is valid; prints all errors.
    /// With <paramref name="warningsToo"/> a warning (a best-practice invariant, say) fails it as well.
    /// </summary>
    public void AssertValid(IEnumerable<(string What, string Json)> answers, bool warningsToo = false)
    {
        var failures = new List<string>();
        var count = 0;
        foreach (var (what, json) in answers)
        {
            count++;
            var errors = Errors(json, what, warningsToo);
            if (errors.Count > 0)
            {
                failures.Add($"{what}:{Environment.NewLine}  {string.Join(Environment.NewLine + "  ", errors)}{Environment.NewLine}  {Shortened(json)}");
            }
        }

        Assert.True(count > 0, "Nothing was validated.");
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    private static string Shortened(string json) => json.Length > 2000 ? json[..2000] + "…" : json;
}
