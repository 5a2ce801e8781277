using System.Security.Claims;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Http;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pit.Server.Auth;
using Pit.Server.Fhir;
using Pit.Server.Patients;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;
using Pit.TestSupport;

namespace Pit.Benchmarks;

/// <summary>
/// The CPU cost of the request path outside authentication and storage: reading and validating a POST body
/// (strict FHIR parse, identifier rules, canonical JSON, hash), composing a stored version, and writing a page.
/// </summary>
[MemoryDiagnoser]
public class RequestPathBenchmarks
{
    // The body budget is as in the server (128 MiB): one request at a time never waits for it.
    private readonly PatientSubmissionReader _reader = new(
        new FhirJson(), new RequestBodyBudget(Options.Create(new ProcessingOptions()), TimeProvider.System),
        new PitMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>()),
        Options.Create(new ValidationOptions()), TimeProvider.System, NullLogger<PatientSubmissionReader>.Instance);
    private readonly FhirJson _fhirJson = new();
    private readonly Hl7.Fhir.Serialization.FhirJsonSerializer _firelySerializer = new();
    private Hl7.Fhir.Model.Patient _parsed = null!;
    private Hl7.Fhir.Model.Patient _largeParsed = null!;
    private readonly PitCaller _caller = new("bench", "974762501", null, false);
    private byte[] _body = [];
    private byte[] _content = [];
    private byte[] _largeBody = [];
    private List<PatientRecord> _page = [];
    private readonly MemoryStream _bundle = new();

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _body = Encoding.UTF8.GetBytes(
            $$"""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{{SyntheticIdentities.FromParts(13, 89, 72, 480)}}"}],"name":[{"family":"Nordmann","given":["Kari","Synnøve"]}],"gender":"female","birthDate":"1972-09-13","address":[{"line":["Storgata 1"],"postalCode":"0155","city":"Oslo"}],"telecom":[{"system":"phone","value":"+4712345678"}]}""");
        var addresses = string.Join(',', Enumerable.Range(0, 3500).Select(i =>
            $$"""{"line":["Storgata {{i}}","Oppgang B, {{i % 7}}. etasje","c/o Familien Nordmann-Hansen"],"postalCode":"0155","city":"Oslo","district":"Sentrum","country":"NO","use":"home","type":"both","text":"Storgata {{i}}, 0155 Oslo, Norge ({{i}})"}"""));
        _largeBody = Encoding.UTF8.GetBytes(
            $$"""{"resourceType":"Patient","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{{SyntheticIdentities.FromParts(13, 89, 72, 480)}}"}],"address":[{{addresses}}]}""");
        if ((await ReadAsync(_largeBody)).Status != 202)
        {
            throw new InvalidOperationException("The large body is not accepted.");
        }

        _largeParsed = _fhirJson.TryParseResource<Hl7.Fhir.Model.Patient>(_largeBody, [])!;
        Console.WriteLine($"large body: {_largeBody.Length} bytes, canonical JSON {_fhirJson.Serialize(_largeParsed).Length} bytes");
        _parsed = _fhirJson.TryParseResource<Hl7.Fhir.Model.Patient>(_body, [])!;
        var read = await ReadAsync();
        _content = read.Submission!.Content;
        _page = [.. Enumerable.Range(0, 20).Select(i => new PatientRecord($"id{i:D30}", "974762501", 1, 1_760_000_000_000_000 + i,
            PatientJson.Compose(_content, $"id{i:D30}", 1, 1_760_000_000_000_000 + i, "974762501")))];
    }

    [Benchmark(Description = "POST body: read, strict parse, identifiers, canonical JSON, SHA-256")]
    public async Task<int> ReadSubmission() => (await ReadAsync()).Status;

    [Benchmark(Description = "large POST body (3,500 addresses, ~0.8 MB): read, strict parse, identifiers, canonical JSON, SHA-256")]
    public async Task<int> ReadLargeSubmission() => (await ReadAsync(_largeBody)).Status;

    [Benchmark(Description = "strict FHIR parse alone (Firely, the POST body)")]
    public object? StrictParse() => _fhirJson.TryParseResource<Hl7.Fhir.Model.Patient>(_body, []);

    [Benchmark(Description = "canonical JSON alone (Firely's serialiser, the parsed Patient)")]
    public int CanonicalJson() => _fhirJson.Serialize(_parsed).Length;

    [Benchmark(Description = "canonical JSON of the large Patient: growing ArrayBufferWriter from 1 KB (before)")]
    public int LargeCanonicalJsonGrowing()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            _firelySerializer.Serialize(_largeParsed, writer);
        }

        return buffer.WrittenSpan.ToArray().Length;
    }

    [Benchmark(Description = "canonical JSON of the large Patient: pooled buffer sized from the body (after)")]
    public int LargeCanonicalJsonPooled() => _fhirJson.Serialize(_largeParsed, _largeBody.Length).Length;

    [Benchmark(Description = "stored version: splice id and meta into canonical JSON")]
    public byte[] ComposeStoredJson() => PatientJson.Compose(_content, "0123456789abcdef0123456789abcdef", 7, 1_760_000_000_000_000, "974762501");

    [Benchmark(Description = "searchset Bundle of 20 Patients")]
    public async Task<long> WriteBundle()
    {
        _bundle.Position = 0;
        var output = System.IO.Pipelines.PipeWriter.Create(_bundle, new System.IO.Pipelines.StreamPipeWriterOptions(leaveOpen: true));
        await SearchBundleWriter.WriteAsync(output, "http://localhost/v1/Patient/", "http://localhost/v1/Patient?_count=20", null, _page, null, CancellationToken.None);
        await output.CompleteAsync();
        return _bundle.Position;
    }

    private Task<SubmissionReadResult> ReadAsync() => ReadAsync(_body);

    private Task<SubmissionReadResult> ReadAsync(byte[] body)
    {
        var context = new DefaultHttpContext();
        context.Request.ContentType = "application/fhir+json";
        context.Request.ContentLength = body.Length;
        context.Request.Body = new MemoryStream(body, writable: false);
        context.User = new ClaimsPrincipal();
        return _reader.ReadAsync(context.Request, _caller, CancellationToken.None);
    }
}
