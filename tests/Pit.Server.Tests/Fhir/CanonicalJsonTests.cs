using System.Buffers;
using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Pit.Server.Fhir;

namespace Pit.Server.Tests.Fhir;

/// <summary>
/// The canonical content the queue stores is Firely's compact JSON; writing it into a pooled buffer sized from the
/// body must give the very bytes the plain serialiser gives, whatever the size hint and however often it grows.
/// </summary>
public sealed class CanonicalJsonTests
{
    [Theory]
    [InlineData(1, 3)]
    [InlineData(1024, 3)]
    [InlineData(1, 20_000)]
    [InlineData(1024, 20_000)]
    [InlineData(2_000_000, 20_000)]
    public void Canonical_JSON_is_the_bytes_of_Firelys_serialiser_whatever_the_size_hint(int sizeHint, int names)
    {
        var patient = new Patient();
        for (var i = 0; i < names; i++)
        {
            patient.Name.Add(new HumanName { Family = $"Nordmann-{i}", Given = ["Kari", "Synnøve \"æøå\" <&>"] });
        }

        var expected = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(expected, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            new FhirJsonSerializer().Serialize(patient, writer);
        }

        var json = new FhirJson();

        Assert.Equal(expected.WrittenSpan.ToArray(), json.Serialize(patient, sizeHint));
        Assert.Equal(expected.WrittenSpan.ToArray(), json.Serialize(patient, sizeHint));
    }
}
