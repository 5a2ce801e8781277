using System.Net;

namespace Pit.Client;

/// <summary>HelseID (or the stand-in) refused to issue a token, or its answer could not be used.</summary>
public sealed class HelseIdTokenException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What went wrong, readable.</param>
    /// <param name="statusCode">HTTP status of the token endpoint's answer, when there was one.</param>
    /// <param name="error">OAuth <c>error</c> code (for example <c>invalid_client</c>).</param>
    /// <param name="errorDescription">OAuth <c>error_description</c>.</param>
    /// <param name="innerException">The underlying failure, if any.</param>
    public HelseIdTokenException(string message, HttpStatusCode? statusCode = null, string? error = null, string? errorDescription = null, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        Error = error;
        ErrorDescription = errorDescription;
    }

    /// <summary>HTTP status of the token endpoint's answer, when there was one.</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>OAuth <c>error</c> code.</summary>
    public string? Error { get; }

    /// <summary>OAuth <c>error_description</c>.</summary>
    public string? ErrorDescription { get; }
}
