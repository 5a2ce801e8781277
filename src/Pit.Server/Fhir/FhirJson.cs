using System.Buffers;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Utility;

namespace Pit.Server.Fhir;

/// <summary>Strict FHIR R4 JSON parsing and compact serialisation with Firely's SDK (thread-safe, one instance).</summary>
internal sealed class FhirJson
{
    private readonly FhirJsonDeserializer _deserializer =
        new(new DeserializerSettings().UsingMode(DeserializationMode.Strict));

    private readonly FhirJsonSerializer _serializer = new();

    /// <summary>Parses <paramref name="json"/> as a resource of type <typeparamref name="T"/>; on failure lists the problems.</summary>
    public T? TryParseResource<T>(ReadOnlySpan<byte> json, List<ParseProblem> problems)
        where T : Resource
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        Resource? resource;
        IEnumerable<CodedException>? errors;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problems.Add(new ParseProblem("The body must be a JSON object holding a FHIR resource.", null));
                return null;
            }

            reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
            _deserializer.TryDeserializeResource(ref reader, out resource, out errors);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            problems.Add(new ParseProblem("The body is not well-formed JSON.", null));
            return null;
        }

        var expected = ModelInfo.GetFhirTypeNameForType(typeof(T));
        if (resource is not null && resource.TypeName != expected)
        {
            problems.Add(new ParseProblem($"Expected a {expected} resource but got resourceType '{resource.TypeName}'.", "resourceType"));
            return null;
        }

        foreach (var error in errors ?? [])
        {
            var path = (error as ExtendedCodedException)?.InstancePath;
            var message = (error as ExtendedCodedException)?.BaseErrorMessage ?? error.Message;
            problems.Add(new ParseProblem(message, path is null or "$this" ? null : path));
        }

        return problems.Count == 0 ? resource as T : null;
    }

    /// <summary>Compact JSON of <paramref name="resource"/>.</summary>
    public byte[] Serialize(Base resource)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            _serializer.Serialize(resource, writer);
        }

        return buffer.WrittenSpan.ToArray();
    }
}

/// <summary>One reason a body was refused, with the FHIRPath-like location when known.</summary>
internal sealed record ParseProblem(string Message, string? Location);
