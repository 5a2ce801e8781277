using System.Buffers;
using System.Text.Json;
using Pit.Server.Storage;

namespace Pit.Server.Patients;

/// <summary>
/// Writes a searchset Bundle straight from the stored, ready-to-send Patient JSON: no FHIR model objects are
/// built for a page of results.
/// </summary>
internal static class SearchBundleWriter
{
    public static byte[] Write(
        string patientBase, string selfUrl, string? nextUrl, IReadOnlyList<PatientRecord> rows, int count, byte[]? outcome)
    {
        var buffer = new ArrayBufferWriter<byte>(2048 + (rows.Count * 1024));
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("resourceType"u8, "Bundle"u8);
            writer.WriteString("type"u8, "searchset"u8);
            writer.WriteStartArray("link"u8);
            WriteLink(writer, "self"u8, selfUrl);
            if (nextUrl is not null)
            {
                WriteLink(writer, "next"u8, nextUrl);
            }

            writer.WriteEndArray();
            var entries = Math.Min(count, rows.Count);
            if (entries > 0 || outcome is not null)
            {
                // FHIR JSON has no empty arrays: a page without entries has no "entry" at all.
                writer.WriteStartArray("entry"u8);
            }

            for (var i = 0; i < entries; i++)
            {
                writer.WriteStartObject();
                writer.WriteString("fullUrl"u8, string.Concat(patientBase, rows[i].Id));
                writer.WritePropertyName("resource"u8);
                writer.WriteRawValue(rows[i].Json, skipInputValidation: true);
                writer.WriteStartObject("search"u8);
                writer.WriteString("mode"u8, "match"u8);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            if (outcome is not null)
            {
                writer.WriteStartObject();
                writer.WriteString("fullUrl"u8, $"urn:uuid:{Guid.NewGuid():D}"); // bdl-15: every entry has a fullUrl
                writer.WritePropertyName("resource"u8);
                writer.WriteRawValue(outcome, skipInputValidation: true);
                writer.WriteStartObject("search"u8);
                writer.WriteString("mode"u8, "outcome"u8);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            if (entries > 0 || outcome is not null)
            {
                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteLink(Utf8JsonWriter writer, ReadOnlySpan<byte> relation, string url)
    {
        writer.WriteStartObject();
        writer.WriteString("relation"u8, relation);
        writer.WriteString("url"u8, url);
        writer.WriteEndObject();
    }
}
