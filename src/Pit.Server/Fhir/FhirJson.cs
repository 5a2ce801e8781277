using System.Buffers;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Hl7.Fhir.Utility;

namespace Pit.Server.Fhir;

/// <summary>Strict FHIR R4 JSON parsing and compact serialisation with Firely's SDK (thread-safe, one instance).</summary>
internal sealed class FhirJson
{
    private const int MaxDepth = 64;

    private readonly FhirJsonDeserializer _deserializer =
        new(new DeserializerSettings().UsingMode(DeserializationMode.Strict));

    private readonly FhirJsonSerializer _serializer = new();

    /// <summary>Parses <paramref name="json"/> as a resource of type <typeparamref name="T"/>; on failure lists the problems.</summary>
    public T? TryParseResource<T>(ReadOnlySpan<byte> json, List<ParseProblem> problems)
        where T : Resource
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
        Resource? resource;
        IEnumerable<CodedException>? errors;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                problems.Add(new ParseProblem("The body must be a JSON object holding a FHIR resource.", null));
                return null;
            }

            if (RepeatedResourceType(json) is { } location)
            {
                problems.Add(new ParseProblem(
                    $"The property 'resourceType' appears more than once in one object (at {ModelInfo.GetFhirTypeNameForType(typeof(T))}{location}); " +
                    "a JSON object may name each property once.", $"{ModelInfo.GetFhirTypeNameForType(typeof(T))}{location}.resourceType"));
            }

            reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
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
            // Without a resourceType Firely names the resource after its own placeholder type; that name means nothing to a client.
            problems.Add(ModelInfo.IsKnownResource(resource.TypeName)
                ? new ParseProblem($"Expected a {expected} resource but got resourceType '{resource.TypeName}'.", "resourceType")
                : new ParseProblem($"The body has no resourceType; a {expected} starts with \"resourceType\": \"{expected}\".", "resourceType"));
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

    /// <summary>
    /// Where an object names <c>resourceType</c> twice (<c>""</c> for the root, <c>.contained[0]</c> for a nested one),
    /// or null. Firely's parser refuses every other repeated property, but it reads <c>resourceType</c> ahead of
    /// the rest and never looks for a second one: it keeps the first, while a proxy or store that keeps the last
    /// would see a different resource. Throws <see cref="JsonException"/> on malformed JSON, as the parser would.
    /// </summary>
    private static string? RepeatedResourceType(ReadOnlySpan<byte> json)
    {
        // Fast path for the usual body: with one literal "resourceType" and no \u escape (the only way to spell
        // another), nothing can repeat it, and two vectorised searches replace a pass over every token.
        var first = json.IndexOf("\"resourceType\""u8);
        if (json.IndexOf("\\u"u8) < 0 && (first < 0 || json[(first + 1)..].IndexOf("\"resourceType\""u8) < 0))
        {
            return null;
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
        var frames = new Frame[MaxDepth + 1];
        var depth = 0;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject or JsonTokenType.StartArray:
                    CountElement(frames, depth);
                    frames[++depth] = new Frame { IsArray = reader.TokenType == JsonTokenType.StartArray, Index = -1 };
                    break;
                case JsonTokenType.EndObject or JsonTokenType.EndArray:
                    depth--;
                    break;
                case JsonTokenType.PropertyName:
                    ref var frame = ref frames[depth];
                    frame.Property = (int)reader.TokenStartIndex;
                    if (reader.ValueTextEquals("resourceType"u8))
                    {
                        if (frame.SeenResourceType)
                        {
                            return PathOf(frames.AsSpan(1, depth - 1), json);
                        }

                        frame.SeenResourceType = true;
                    }

                    break;
                default:
                    CountElement(frames, depth);
                    break;
            }
        }

        return null;

        static void CountElement(Frame[] frames, int depth)
        {
            if (frames[depth].IsArray)
            {
                frames[depth].Index++;
            }
        }
    }

    /// <summary>The path to an object inside <paramref name="outer"/>, the property names read back from the JSON.</summary>
    private static string PathOf(ReadOnlySpan<Frame> outer, ReadOnlySpan<byte> json)
    {
        var path = new System.Text.StringBuilder();
        foreach (var frame in outer)
        {
            if (frame.IsArray)
            {
                path.Append('[').Append(frame.Index).Append(']');
                continue;
            }

            var name = new Utf8JsonReader(json[frame.Property..]);
            name.Read();
            path.Append('.').Append(name.GetString());
        }

        return path.ToString();
    }

    /// <summary>One open object or array while scanning: the current property's offset, or the current element's index.</summary>
    private struct Frame
    {
        public bool IsArray;
        public int Index;
        public int Property;
        public bool SeenResourceType;
    }

    /// <summary>
    /// Compact JSON of <paramref name="resource"/>. <paramref name="sizeHint"/> is the expected size (for a resource
    /// parsed from a body, the body's length): the JSON is written into a pooled buffer of about that size and copied
    /// out once, so a large resource leaves one array of its size behind, not a chain of doubled ones.
    /// </summary>
    public byte[] Serialize(Base resource, int sizeHint = 1024)
    {
        using var buffer = new PooledBufferWriter(sizeHint);
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            _serializer.Serialize(resource, writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}

/// <summary>One reason a body was refused, with the FHIRPath-like location when known.</summary>
internal sealed record ParseProblem(string Message, string? Location);
