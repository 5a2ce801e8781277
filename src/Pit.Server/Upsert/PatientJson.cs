using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Pit.Server.Upsert;

/// <summary>
/// The stored, ready-to-send form of a Patient: the canonical content (Firely's compact JSON with no id and no
/// meta) with the server's id and meta spliced in right after <c>resourceType</c>. Splicing bytes keeps the
/// processing step free of a second FHIR parse.
/// </summary>
internal static class PatientJson
{
    /// <summary>The organisation-number system used for the tenant tag.</summary>
    public const string OrganisationSystem = "urn:oid:2.16.578.1.12.4.1.4.101";

    private static readonly byte[] Prefix = "{\"resourceType\":\"Patient\""u8.ToArray();

    /// <summary>Whether <paramref name="content"/> starts the way <see cref="Compose"/> requires.</summary>
    public static bool IsCanonical(ReadOnlySpan<byte> content) =>
        content.StartsWith(Prefix) && content.Length > Prefix.Length && (content[Prefix.Length] == (byte)',' || content[Prefix.Length] == (byte)'}');

    /// <summary>
    /// Builds the stored JSON of one Patient version; <paramref name="provenance"/> (who submitted it) becomes the
    /// meta extensions of <see cref="ProvenanceExtensions"/>. Null writes none (planner unit tests only: every engine
    /// passes the submission's provenance).
    /// </summary>
    public static byte[] Compose(ReadOnlySpan<byte> content, string id, int version, long lastUpdated, string tenant, SubmissionProvenance? provenance = null)
    {
        if (!IsCanonical(content))
        {
            throw new ArgumentException("Content is not canonical Patient JSON.", nameof(content));
        }

        var buffer = new ArrayBufferWriter<byte>(content.Length + 256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("resourceType"u8, "Patient"u8);
            writer.WriteString("id"u8, id);
            writer.WriteStartObject("meta"u8);
            if (provenance is not null)
            {
                WriteProvenance(writer, provenance);
            }

            writer.WriteString("versionId"u8, version.ToString(CultureInfo.InvariantCulture));
            writer.WriteString("lastUpdated"u8, FeedTime.Format(lastUpdated));
            writer.WriteStartArray("tag"u8);
            writer.WriteStartObject();
            writer.WriteString("system"u8, OrganisationSystem);
            writer.WriteString("code"u8, tenant);
            writer.WriteEndObject();
            writer.WriteEndArray();
            writer.WriteEndObject();
            writer.Flush();
        }

        // The writer's output is an unterminated object; append the rest of the content (",..." or "}").
        var result = new byte[buffer.WrittenCount + content.Length - Prefix.Length];
        buffer.WrittenSpan.CopyTo(result);
        content[Prefix.Length..].CopyTo(result.AsSpan(buffer.WrittenCount));
        return result;
    }

    private static void WriteProvenance(Utf8JsonWriter writer, SubmissionProvenance provenance)
    {
        writer.WriteStartArray("extension"u8);
        WriteExtension(writer, ProvenanceExtensions.ParentOrganizationNumber, provenance.Organisation);
        WriteExtension(writer, ProvenanceExtensions.ChildOrganizationNumber, provenance.OrgnrChild);
        WriteExtension(writer, ProvenanceExtensions.SourceClientId, provenance.ClientId);
        WriteExtension(writer, ProvenanceExtensions.SourceClientName, provenance.ClientName);
        WriteExtension(writer, ProvenanceExtensions.SubmissionId, provenance.SubmissionId.ToString("D"));
        writer.WriteEndArray();
    }

    private static void WriteExtension(Utf8JsonWriter writer, string url, string? value)
    {
        // FHIR strings may not be empty: an empty or absent claim is simply not stated.
        if (string.IsNullOrEmpty(value))
        {
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("url"u8, url);
        writer.WriteString("valueString"u8, value);
        writer.WriteEndObject();
    }

    private static readonly byte[] LastUpdatedProperty = "\"lastUpdated\":\""u8.ToArray();

    /// <summary>
    /// The byte offset of the meta.lastUpdated value (after its opening quote) in JSON made by <see cref="Compose"/>,
    /// so a later step can overwrite the <see cref="FeedTime.FormattedLength"/> bytes in place (PostgreSQL's sequencer).
    /// The first match is meta's: meta comes before the content, and inside a JSON string a quote is always escaped,
    /// so the unescaped property text cannot occur in an extension value.
    /// </summary>
    public static int LastUpdatedOffset(ReadOnlySpan<byte> json)
    {
        var at = json.IndexOf(LastUpdatedProperty);
        if (at < 0)
        {
            throw new ArgumentException("The JSON has no meta.lastUpdated.", nameof(json));
        }

        return at + LastUpdatedProperty.Length;
    }

    /// <summary>For diagnostics in tests.</summary>
    internal static string ToText(byte[] json) => Encoding.UTF8.GetString(json);
}

/// <summary>
/// Feed timestamps: microseconds since the Unix epoch, exposed as FHIR instants with six fractional digits, so the
/// exposed precision is exactly the stored one and <c>gt</c> on an exposed value means "strictly after it".
/// </summary>
internal static class FeedTime
{
    private const long TicksPerMicrosecond = TimeSpan.TicksPerMicrosecond;

    /// <summary>Microseconds since the epoch of <paramref name="time"/>, truncated.</summary>
    public static long FromDateTimeOffset(DateTimeOffset time) =>
        (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / TicksPerMicrosecond;

    /// <summary>The instant of <paramref name="micros"/>.</summary>
    public static DateTimeOffset ToDateTimeOffset(long micros) =>
        new(DateTimeOffset.UnixEpoch.UtcTicks + (micros * TicksPerMicrosecond), TimeSpan.Zero);

    /// <summary>
    /// The feed clock's rule: the next lastUpdated after <paramref name="clock"/> (the highest one given out) is the
    /// wall clock <paramref name="now"/>, or one microsecond past the clock when the wall clock is not ahead of it, so
    /// values are strictly increasing whatever the wall clock does. SQLite's apply and PostgreSQL's sequencer both stamp
    /// by it.
    /// </summary>
    public static long Next(long now, long clock) => Math.Max(now, clock + 1);

    /// <summary>The length of every <see cref="Format"/>ted value (years 1000-9999).</summary>
    public const int FormattedLength = 27;

    /// <summary><c>2026-11-25T11:06:35.123456Z</c></summary>
    public static string Format(long micros) =>
        ToDateTimeOffset(micros).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
