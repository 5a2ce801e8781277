using System.Buffers;
using System.Security.Cryptography;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;
using Pit.Server.Auth;
using Pit.Server.Fhir;
using Pit.Server.Storage;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;

namespace Pit.Server.Patients;

/// <summary>Options of section <c>Pit:Validation</c>.</summary>
internal sealed class ValidationOptions
{
    /// <summary>Accept synthetic test identity numbers (month + 40 or + 80). Default true.</summary>
    public bool AllowSyntheticIdentifiers { get; set; } = true;
}

/// <summary>What reading a POST body gave: a submission, or the error response to send (503: try again later).</summary>
internal readonly record struct SubmissionReadResult(NewSubmission? Submission, int Status, OperationOutcome? Outcome);

/// <summary>
/// Turns a POST body into a validated submission: media type, size limit enforced while reading, strict FHIR
/// parsing, Norwegian identifier rules, and the canonical content (no id, no meta) with its hash.
/// </summary>
/// <remarks>
/// The body is read and parsed within a share of the server-wide <see cref="RequestBodyBudget"/>, taken before the
/// first byte is read and given back when this returns. By then the body buffer is back in its pool and the parsed
/// Patient is garbage; what lives on is the canonical content, which the queue counts from hand-over
/// (<see cref="Processing.ProcessingOptions.MaxQueuedBytes"/>). A POST that cannot get its share in time is answered
/// 503 without its body being read.
/// </remarks>
internal sealed partial class PatientSubmissionReader(
    FhirJson fhirJson, RequestBodyBudget budget, PitMetrics metrics, IOptions<ValidationOptions> options, TimeProvider time,
    ILogger<PatientSubmissionReader> logger)
{
    /// <summary>The request limit: 900 KB.</summary>
    public const int MaxBodyBytes = 921_600;

    public async Task<SubmissionReadResult> ReadAsync(HttpRequest request, PitCaller caller, CancellationToken cancellationToken)
    {
        if (!IsJsonMediaType(request.ContentType))
        {
            return Fail(StatusCodes.Status415UnsupportedMediaType, OperationOutcome.IssueType.NotSupported,
                "The body must be FHIR JSON: Content-Type application/fhir+json or application/json (charset utf-8).");
        }

        if (request.ContentLength > MaxBodyBytes)
        {
            return TooLarge();
        }

        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = MaxBodyBytes;
        }

        // A chunked body may grow to the maximum, so it is charged the maximum.
        using var share = await budget.AcquireAsync(request.ContentLength ?? MaxBodyBytes, cancellationToken);
        if (share is null)
        {
            metrics.BodyBudgetRefused();
            LogBudgetSpent(logger, budget.InUse, budget.Capacity, budget.Waiting);
            return Fail(StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient,
                "The server is reading as many submissions as it can hold right now. Nothing was accepted; retry later.");
        }

        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Min(request.ContentLength ?? 16 * 1024, MaxBodyBytes) + 1);
        try
        {
            var length = 0;
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length > MaxBodyBytes)
                    {
                        return TooLarge();
                    }

                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, MaxBodyBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                int read;
                try
                {
                    read = await request.Body.ReadAsync(buffer.AsMemory(length), cancellationToken);
                }
                catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
                {
                    return TooLarge();
                }

                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > MaxBodyBytes)
                {
                    return TooLarge();
                }
            }

            return Validate(buffer.AsSpan(0, length), caller);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private SubmissionReadResult Validate(ReadOnlySpan<byte> body, PitCaller caller)
    {
        if (body.IsEmpty)
        {
            return Fail(StatusCodes.Status400BadRequest, OperationOutcome.IssueType.Required, "The body is empty: a FHIR Patient resource is required.");
        }

        var problems = new List<ParseProblem>();
        var patient = fhirJson.TryParseResource<Patient>(body, problems);
        if (patient is null)
        {
            var outcome = new OperationOutcome();
            foreach (var p in problems)
            {
                outcome.Issue.Add(p.Location is null
                    ? Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Structure, p.Message)
                    : Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Structure, p.Message, p.Location));
            }

            return new SubmissionReadResult(null, StatusCodes.Status400BadRequest, outcome);
        }

        if (ClientProvenanceCheck.Check(patient) is { } provenanceIssues)
        {
            return new SubmissionReadResult(null, StatusCodes.Status400BadRequest, provenanceIssues);
        }

        var keys = new List<PatientKey>();
        var identifierIssues = new OperationOutcome();
        for (var i = 0; i < patient.Identifier.Count; i++)
        {
            var identifier = patient.Identifier[i];
            if (!NorwegianIdentifiers.IsPersonSystem(identifier.System))
            {
                continue;
            }

            if (NorwegianIdentifiers.Check(identifier.System!, identifier.Value, options.Value.AllowSyntheticIdentifiers) is { } reason)
            {
                identifierIssues.Issue.Add(Outcomes.Issue(OperationOutcome.IssueSeverity.Error, OperationOutcome.IssueType.Value,
                    $"Patient.identifier[{i}] ({identifier.System}): {reason}", $"Patient.identifier[{i}].value"));
                continue;
            }

            keys.Add(new PatientKey(identifier.System!, identifier.Value!));
        }

        if (identifierIssues.Issue.Count > 0)
        {
            return new SubmissionReadResult(null, StatusCodes.Status400BadRequest, identifierIssues);
        }

        if (keys.Count == 0)
        {
            return Fail(StatusCodes.Status400BadRequest, OperationOutcome.IssueType.Required,
                "The Patient needs at least one identifier with a Norwegian person identifier system " +
                "(fødselsnummer, D-number, H-number, FH-number or DUF-number: urn:oid:2.16.578.1.12.4.1.4.1 to .4.5).",
                "Patient.identifier");
        }

        // The server owns id and meta: the client's are dropped, the stored version gets the server's.
        patient.Id = null;
        patient.Meta = null;
        // Firely's compact JSON is about as long as a compact body; a pretty-printed one only over-sizes the pooled buffer.
        var content = fhirJson.Serialize(patient, body.Length);
        var submission = new NewSubmission(
            Guid.CreateVersion7(), caller.Organisation, caller.ClientId, caller.OrgnrChild, content, SHA256.HashData(content),
            keys, FeedTime.FromDateTimeOffset(time.GetUtcNow()), caller.ClientName);
        return new SubmissionReadResult(submission, StatusCodes.Status202Accepted, null);
    }

    private static bool IsJsonMediaType(string? contentType)
    {
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media))
        {
            return false;
        }

        var type = media.MediaType;
        var json = type.Equals("application/fhir+json", StringComparison.OrdinalIgnoreCase)
            || type.Equals("application/json", StringComparison.OrdinalIgnoreCase);
        var charset = media.Charset;
        return json && (!charset.HasValue || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase));
    }

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning,
        Message = "Request body budget spent ({InUse} of {Capacity} bytes held, {Waiting} waiting); a submission is answered 503")]
    private static partial void LogBudgetSpent(ILogger logger, long inUse, long capacity, int waiting);

    private static SubmissionReadResult TooLarge() =>
        Fail(StatusCodes.Status413PayloadTooLarge, OperationOutcome.IssueType.TooLong,
            $"The request body is larger than {MaxBodyBytes} bytes (900 KB), the limit for a Patient submission.");

    private static SubmissionReadResult Fail(int status, OperationOutcome.IssueType code, string message, params string[] expression) =>
        new(null, status, Outcomes.Error(code, message, expression));
}
