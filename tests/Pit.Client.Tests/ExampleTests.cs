using System.Text.Json;
using Hl7.Fhir.Model;
using Hl7.Fhir.Serialization;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

public sealed class ExampleTests
{
    public static TheoryData<string> ExampleFiles()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(ExamplesFolder(), "*.json").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ExampleFiles))]
    public void Example_is_a_strict_FHIR_Patient_with_a_valid_synthetic_fodselsnummer(string file)
    {
        var json = File.ReadAllText(Path.Combine(ExamplesFolder(), file));
        var patient = JsonSerializer.Deserialize<Patient>(json, new JsonSerializerOptions().ForFhir(ModelInfo.ModelInspector).UsingMode(DeserializationMode.Strict))!;

        var fnr = Assert.Single(patient.Identifier, i => i.System == "urn:oid:2.16.578.1.12.4.1.4.1").Value!;
        Assert.Matches("^[0-9]{11}$", fnr);
        var month = int.Parse(fnr.AsSpan(2, 2), provider: null);
        Assert.InRange(month, 81, 92); // synthetic: month + 80
        Assert.Null(Pit.Security.NorwegianIdentityNumbers.Check(fnr, dNumber: false, allowSynthetic: true));
        Assert.Equal(patient.BirthDate, $"{BirthYear(patient.BirthDate!)}-{month - 80:00}-{fnr[..2]}");
    }

    private static string BirthYear(string birthDate) => birthDate[..4];

    private static string ExamplesFolder() => RealPit.ExamplesFolder();
}
