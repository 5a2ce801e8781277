using System.Net;
using Hl7.Fhir.Model;

namespace Pit.Client;

/// <summary>
/// The PIT server answered with an error. Carries the HTTP status and, when the server sent one (it always should),
/// the FHIR <see cref="OperationOutcome"/> explaining why.
/// </summary>
public sealed class PitApiException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="statusCode">The HTTP status.</param>
    /// <param name="outcome">The server's OperationOutcome, if the body held one.</param>
    /// <param name="authenticateChallenge">The <c>WWW-Authenticate</c> header on 401/403 answers.</param>
    /// <param name="message">A readable summary.</param>
    public PitApiException(HttpStatusCode statusCode, OperationOutcome? outcome, string? authenticateChallenge, string message)
        : base(message)
    {
        StatusCode = statusCode;
        Outcome = outcome;
        AuthenticateChallenge = authenticateChallenge;
    }

    /// <summary>The HTTP status the server answered with.</summary>
    public HttpStatusCode StatusCode { get; }

    /// <summary>The server's OperationOutcome, if the body held one.</summary>
    public OperationOutcome? Outcome { get; }

    /// <summary>The <c>WWW-Authenticate</c> challenge on 401/403 answers (for example <c>DPoP error="invalid_token"</c>).</summary>
    public string? AuthenticateChallenge { get; }

    /// <summary>One line per issue of <see cref="Outcome"/>: severity, code, text and location.</summary>
    public IReadOnlyList<string> IssueLines => FhirJson.DescribeIssues(Outcome);
}
