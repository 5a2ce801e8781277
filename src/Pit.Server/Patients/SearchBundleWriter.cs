using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using Pit.Server.Storage;

namespace Pit.Server.Patients;

/// <summary>
/// Writes a searchset Bundle straight from the stored, ready-to-send Patient JSON to the response, entry by entry: no
/// FHIR model objects are built for a page, and the Bundle never sits whole in memory. Bytes go to the response's
/// <see cref="PipeWriter"/> and are flushed every <see cref="FlushBytes"/> or so; a flush waits while Kestrel's
/// response buffer is full, so a client that stops reading stalls only its own request, which then holds the page's
/// rows (at most <c>Pit:Search:MaxPageBytes</c>, or one larger Patient), at most one entry not yet taken by Kestrel,
/// and Kestrel's response buffer.
/// </summary>
internal static class SearchBundleWriter
{
    /// <summary>
    /// Bytes written between flushes: big enough that an ordinary page of small Patients goes out in few writes, small
    /// enough to stay under Kestrel's response buffer (64 KiB by default), past which a flush waits for the client.
    /// </summary>
    public const int FlushBytes = 32 * 1024;

    private static readonly JsonWriterOptions Options = new() { SkipValidation = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Writes the Bundle: <paramref name="rows"/> as match entries (full URL <paramref name="patientBase"/> + id),
    /// then <paramref name="outcome"/> (OperationOutcome JSON), if any, as an outcome entry. FHIR JSON has no empty
    /// arrays, so a Bundle with neither has no <c>entry</c> at all.
    /// </summary>
    public static async Task WriteAsync(
        PipeWriter output, string patientBase, string selfUrl, string? nextUrl, IReadOnlyList<PatientRecord> rows, byte[]? outcome,
        CancellationToken cancellationToken)
    {
        await using var writer = new Utf8JsonWriter(output, Options);
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
        if (rows.Count > 0 || outcome is not null)
        {
            writer.WriteStartArray("entry"u8);
            long flushed = 0;
            foreach (var row in rows)
            {
                writer.WriteStartObject();
                writer.WriteString("fullUrl"u8, string.Concat(patientBase, row.Id));
                writer.WritePropertyName("resource"u8);
                writer.WriteRawValue(row.Json, skipInputValidation: true);
                WriteSearchMode(writer, "match"u8);
                writer.WriteEndObject();

                // Every FlushBytes or so: hands what is written to the pipe and sends it, waiting while the client is behind.
                if (writer.BytesCommitted + writer.BytesPending - flushed >= FlushBytes)
                {
                    writer.Flush();
                    flushed = writer.BytesCommitted;
                    if (!await FlushAsync(output, cancellationToken))
                    {
                        return;
                    }
                }
            }

            if (outcome is not null)
            {
                writer.WriteStartObject();
                writer.WriteString("fullUrl"u8, "urn:uuid:" + Guid.NewGuid().ToString("D"));
                writer.WritePropertyName("resource"u8);
                writer.WriteRawValue(outcome, skipInputValidation: true);
                WriteSearchMode(writer, "outcome"u8);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
        writer.Flush();
        await FlushAsync(output, cancellationToken);
    }

    /// <summary>Flushes; false once the client has gone (nothing more is worth writing, and no one to tell).</summary>
    private static async Task<bool> FlushAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        try
        {
            var result = await output.FlushAsync(cancellationToken);
            return !result.IsCompleted && !result.IsCanceled;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static void WriteSearchMode(Utf8JsonWriter writer, ReadOnlySpan<byte> mode)
    {
        writer.WriteStartObject("search"u8);
        writer.WriteString("mode"u8, mode);
        writer.WriteEndObject();
    }

    private static void WriteLink(Utf8JsonWriter writer, ReadOnlySpan<byte> relation, string url)
    {
        writer.WriteStartObject();
        writer.WriteString("relation"u8, relation);
        writer.WriteString("url"u8, url);
        writer.WriteEndObject();
    }
}
