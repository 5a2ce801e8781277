using System.Globalization;
using System.Text.RegularExpressions;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Pit.Server.Audit;
using Pit.Server.Auth;
using Pit.Server.Fhir;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Telemetry;
using Pit.Server.Upsert;

namespace Pit.Server.Patients;

using BadRequest = FhirProblem<ProblemStatus.BadRequest>;
using NotFound = FhirProblem<ProblemStatus.NotFound>;

/// <summary>The PIT-API endpoints: submit, search, read and submission status.</summary>
internal static partial class PatientEndpoints
{
    public static IServiceCollection AddPitPatients(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ValidationOptions>().Bind(configuration.GetSection("Pit:Validation"));
        services.AddOptions<SearchOptions>().Bind(configuration.GetSection("Pit:Search")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SearchOptions>, SearchOptionsValidator>();
        services.AddSingleton<PatientSubmissionReader>();
        services.AddSingleton<RequestBodyBudget>();

        // Kestrel reads a connection's bytes ahead of the application up to this buffer (1 MB by default), so bodies
        // waiting for their share of the RequestBodyBudget would each sit there nearly whole. A smaller buffer leaves
        // them in the sender's socket instead; Kestrel:Limits:MaxRequestBufferSize still overrides it.
        if (configuration["Kestrel:Limits:MaxRequestBufferSize"] is null)
        {
            services.Configure<KestrelServerOptions>(o => o.Limits.MaxRequestBufferSize = ReadAheadBytes);
        }

        services.AddSingleton<SearchCursorProtector>();
        services.AddSingleton<PatientPager>();
        return services;
    }

    public static WebApplication MapPitPatients(this WebApplication app)
    {
        var v1 = app.MapGroup("/v1").NegotiateFhirJson();
        v1.MapPost("/Patient", SubmitAsync).RequireAuthorization(PitPolicies.Write).DescribeSubmit();
        v1.MapGet("/Patient", SearchAsync).RequireAuthorization(PitPolicies.Read).DescribeSearch();
        v1.MapGet("/Patient/{id}", ReadAsync).RequireAuthorization(PitPolicies.Read).DescribeRead();
        v1.MapGet("/submissions/{id}", StatusAsync).RequireAuthorization(PitPolicies.Write).DescribeStatus();
        return app;
    }

    /// <summary>How far Kestrel reads a connection ahead of the application (see <see cref="AddPitPatients"/>).</summary>
    internal const int ReadAheadBytes = 64 * 1024;

    private static async Task<Results<FhirAccepted<OperationOutcome>, BadRequest, FhirProblem<ProblemStatus.PayloadTooLarge>, FhirProblem<ProblemStatus.UnsupportedMediaType>, PitProblem>> SubmitAsync(
        HttpContext context, PitCaller caller, PatientSubmissionReader reader, SubmissionQueue queue, AuditTrail audit, PitMetrics metrics,
        PublicBaseUrl baseUrl, TimeProvider time)
    {
        var read = await reader.ReadAsync(context.Request, caller, context.RequestAborted);
        if (read.Submission is not { } submission)
        {
            var busy = read.Status == StatusCodes.Status503ServiceUnavailable;
            audit.Record(Audit(time, "submit", caller, null, null, read.Status, busy ? "not read" : "rejected"));
            metrics.Submission(busy ? "unavailable" : "rejected");
            var refused = PitProblem.WithOutcome(read.Status, read.Outcome!);
            if (busy)
            {
                // Documented with every authenticated endpoint's 503 (OpenAPI); Retry-After as for a full queue.
                return refused.WithHeader("Retry-After", PitProblem.RetryAfterSeconds);
            }

            return read.Status switch
            {
                StatusCodes.Status413PayloadTooLarge => new FhirProblem<ProblemStatus.PayloadTooLarge>(refused),
                StatusCodes.Status415UnsupportedMediaType => new FhirProblem<ProblemStatus.UnsupportedMediaType>(refused),
                _ => new BadRequest(refused),
            };
        }

        try
        {
            await queue.AddAsync(submission, context.RequestAborted);
        }
        catch (StoreUnavailableException)
        {
            audit.Record(Audit(time, "submit", caller, submission.Id, null, StatusCodes.Status503ServiceUnavailable, "not stored"));
            metrics.Submission("unavailable");
            throw; // answered 503 + Retry-After by the exception handler, like every other store outage
        }

        audit.Record(Audit(time, "submit", caller, submission.Id, null, StatusCodes.Status202Accepted, "accepted"));
        metrics.Submission("accepted");
        context.Response.Headers.ContentLocation = $"{baseUrl.For(context.Request)}/v1/submissions/{submission.Id:D}";
        return FhirResults.Accepted<OperationOutcome>(AcceptedOutcome.Value);
    }

    private static async Task<Results<FhirOkStream<Bundle>, BadRequest>> SearchAsync(
        HttpContext context, PitCaller caller, PatientPager pager, AuditTrail audit, FhirJson fhirJson, PublicBaseUrl baseUrl, TimeProvider time)
    {
        var request = context.Request;
        var root = baseUrl.For(request) + "/v1/Patient";
        var result = await pager.SearchAsync(caller, request.Query, request.Headers["Prefer"], root, context.RequestAborted);
        if (result.Page is not { } page)
        {
            return new BadRequest(PitProblem.WithOutcome(StatusCodes.Status400BadRequest, result.Refusal!));
        }

        if (page.Waited is { } waited)
        {
            context.Response.Headers["Preference-Applied"] = $"wait={(int)waited.TotalSeconds}";
        }

        var warnings = page.Warnings.Count > 0 ? fhirJson.Serialize(new OperationOutcome { Issue = [.. page.Warnings] }) : null;
        audit.Record(Audit(time, "search", caller, null, string.Join(',', page.Rows.Select(r => r.Id)), StatusCodes.Status200OK, "ok"));
        return FhirResults.OkStream<Bundle>((output, ct) => SearchBundleWriter.WriteAsync(output, root + "/", page.Self, page.Next, page.Rows, warnings, ct));
    }

    private static async Task<Results<FhirOk<Patient>, NotFound>> ReadAsync(
        string id, HttpContext context, PitCaller caller, IPatientFeedStore store, AuditTrail audit, TimeProvider time)
    {
        var patient = FhirId().IsMatch(id) ? await store.GetPatientAsync(id, context.RequestAborted) : null;
        if (patient is null || !caller.MayRead(patient.Tenant))
        {
            audit.Record(Audit(time, "read", caller, null, null, StatusCodes.Status404NotFound, "not found"));
            return new NotFound(PitProblem.Error(StatusCodes.Status404NotFound, OperationOutcome.IssueType.NotFound, $"Patient/{id} is not known."));
        }

        audit.Record(Audit(time, "read", caller, null, patient.Id, StatusCodes.Status200OK, "ok"));
        context.Response.Headers.ETag = $"W/\"{patient.Version}\"";
        context.Response.Headers.LastModified = FeedTime.ToDateTimeOffset(patient.LastUpdated).ToString("R", CultureInfo.InvariantCulture);
        return FhirResults.Ok<Patient>(patient.Json);
    }

    private static async Task<Results<FhirOk<OperationOutcome>, FhirAccepted<OperationOutcome>, NotFound, FhirProblem<ProblemStatus.UnprocessableEntity>>> StatusAsync(
        string id, HttpContext context, PitCaller caller, ISubmissionQueueStore store, PublicBaseUrl baseUrl)
    {
        var submission = Guid.TryParse(id, out var guid) ? await store.GetSubmissionAsync(guid, context.RequestAborted) : null;
        if (submission is null || !caller.MayRead(submission.Tenant))
        {
            return new NotFound(PitProblem.Error(StatusCodes.Status404NotFound, OperationOutcome.IssueType.NotFound, $"Submission {id} is not known."));
        }

        var reference = $"Patient/{submission.PatientId}";
        switch (submission.State)
        {
            case SubmissionState.Queued:
                context.Response.Headers.RetryAfter = "1";
                return FhirResults.Accepted(context, Outcomes.Information("Queued: accepted and stored, not processed yet."));
            case SubmissionState.Failed:
                return new FhirProblem<ProblemStatus.UnprocessableEntity>(PitProblem.Error(StatusCodes.Status422UnprocessableEntity,
                    OperationOutcome.IssueType.Processing, $"Failed: {submission.Reason}"));
            default:
                context.Response.Headers.Location = $"{baseUrl.For(context.Request)}/v1/{reference}";
                var what = submission.State switch
                {
                    SubmissionState.Applied => $"stored as version {submission.PatientVersion}",
                    SubmissionState.Unchanged => $"identical to the current version {submission.PatientVersion}; no new version",
                    _ => "a later submission for the same patient had already been applied",
                };
                return FhirResults.Ok(context, Outcomes.Information($"Processed: {reference}, {what}.", reference));
        }
    }

    private static AuditEntry Audit(TimeProvider time, string action, PitCaller caller, Guid? submission, string? patients, int status, string outcome) =>
        new(FeedTime.FromDateTimeOffset(time.GetUtcNow()), action, caller.ClientId, caller.Organisation, caller.OrgnrChild, submission, patients, status, outcome);

    private static readonly Lazy<byte[]> AcceptedOutcome = new(() => new FhirJson().Serialize(
        Outcomes.Information("Accepted: the submission is stored and queued for processing. Its status is at the Content-Location URL.")));

    [GeneratedRegex("^[A-Za-z0-9\\-\\.]{1,64}$")]
    private static partial Regex FhirId();
}
