using System.Diagnostics;
using Hl7.Fhir.Model;

namespace Pit.Server.Fhir;

/// <summary>
/// A refused or failed request as the client sees it: a status, an OperationOutcome and the headers that belong to
/// it (Retry-After, WWW-Authenticate, ...). Every error answer of the server, from an endpoint, a filter, the
/// authentication handler, the exception handler or the status pages, is one of these and is written by
/// <see cref="ExecuteAsync"/>, so the shape of an error is decided in one place.
/// </summary>
internal sealed class PitProblem : IResult
{
    /// <summary>Seconds a client should wait before retrying after a 503.</summary>
    public const string RetryAfterSeconds = "5";

    private readonly List<KeyValuePair<string, string>> _headers = [];

    private PitProblem(int status, OperationOutcome outcome)
    {
        Status = status;
        Outcome = Outcomes.Capped(outcome);
    }

    /// <summary>The HTTP status.</summary>
    public int Status { get; }

    /// <summary>The body, capped to <see cref="Outcomes.MaxIssues"/> issues (<see cref="Outcomes.Capped"/>).</summary>
    public OperationOutcome Outcome { get; }

    /// <summary>Headers sent with the answer.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers => _headers;

    /// <summary>One error issue of <paramref name="code"/>; <paramref name="expression"/> names where it is.</summary>
    public static PitProblem Error(int status, OperationOutcome.IssueType code, string diagnostics, params string[] expression) =>
        new(status, Outcomes.Error(code, diagnostics, expression));

    /// <summary>An outcome with several issues (all of a parse's problems, say).</summary>
    public static PitProblem WithOutcome(int status, OperationOutcome outcome) => new(status, outcome);

    /// <summary>503 + Retry-After: a dependency (the store, the replay cache) cannot be reached; nothing was done.</summary>
    public static PitProblem Unavailable(string diagnostics) =>
        Error(StatusCodes.Status503ServiceUnavailable, OperationOutcome.IssueType.Transient, diagnostics)
            .WithHeader("Retry-After", RetryAfterSeconds);

    /// <summary>The store cannot be reached (a transient database failure, or a submission it could not take).</summary>
    public static PitProblem StoreUnavailable() =>
        Unavailable("The service cannot reach its store right now. Nothing was done; retry later.");

    /// <summary>A failure nobody expected: 500, never a stack trace (the correlation id is added on the way out).</summary>
    public static PitProblem Unexpected() =>
        Error(StatusCodes.Status500InternalServerError, OperationOutcome.IssueType.Exception, "An unexpected error occurred.");

    /// <summary>The id that ties a 5xx answer to the server's log line about it.</summary>
    public static string CorrelationId(HttpContext context) => Operability.CorrelationIds.Of(context);

    /// <summary>Adds a header to the answer.</summary>
    public PitProblem WithHeader(string name, string value)
    {
        _headers.Add(new(name, value));
        return this;
    }

    /// <inheritdoc />
    public System.Threading.Tasks.Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        foreach (var (name, value) in _headers)
        {
            response.Headers[name] = value;
        }

        if (Status >= StatusCodes.Status500InternalServerError && Outcome.Issue.Count > 0)
        {
            // 5xx answers name the id the server logged them under, so an operator can find the cause.
            var issue = Outcome.Issue[0];
            issue.Diagnostics = $"{issue.Diagnostics} Correlation id: {CorrelationId(httpContext)}.";
        }

        var json = httpContext.RequestServices.GetRequiredService<FhirJson>().Serialize(Outcome);
        return FhirResults.WriteJsonAsync(httpContext, json, Status);
    }
}
