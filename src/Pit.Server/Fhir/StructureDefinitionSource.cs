using System.Collections.Frozen;
using Hl7.Fhir.Model;
using Pit.Server.Upsert;

namespace Pit.Server.Fhir;

/// <summary>
/// The StructureDefinitions this server publishes: those of its provenance extensions
/// (<see cref="ProvenanceExtensions"/>), shipped as FHIR JSON files in Fhir/StructureDefinitions and
/// served read-only, without authentication, at <c>/v1/StructureDefinition/{id}</c> so that a validator can
/// resolve the extensions a stored Patient carries.
/// </summary>
internal sealed class StructureDefinitionSource
{
    private const string ResourcePrefix = "StructureDefinition/";

    private readonly FrozenDictionary<string, byte[]> _byId;
    private readonly List<string> _urls = [];

    public StructureDefinitionSource(FhirJson json)
    {
        var byId = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        var assembly = typeof(StructureDefinitionSource).Assembly;
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);

            // Parsed strictly and written compactly, like every other answer; a broken file stops the server at once.
            var problems = new List<ParseProblem>();
            var definition = json.TryParseResource<StructureDefinition>(copy.ToArray(), problems)
                ?? throw new InvalidOperationException($"{name} is not a valid StructureDefinition: {string.Join("; ", problems.Select(p => p.Message))}");
            if (definition.Id is not { } id || definition.Url is not { } url)
            {
                throw new InvalidOperationException($"{name} has no id or no url.");
            }

            byId.Add(id, json.Serialize(definition));
            _urls.Add(url);
        }

        _byId = byId.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The canonical URL of every published definition.</summary>
    public IReadOnlyList<string> Urls => _urls;

    /// <summary>The ids of the published definitions.</summary>
    public IEnumerable<string> Ids => _byId.Keys;

    /// <summary>The compact FHIR JSON of definition <paramref name="id"/>, or null.</summary>
    public byte[]? Get(string id) => _byId.GetValueOrDefault(id);
}
