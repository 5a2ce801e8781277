using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Diagnostics;
using Pit.Server.Processing;

namespace Pit.Server.Fhir;

/// <summary>
/// Every error leaves as an OperationOutcome: exceptions are mapped by <see cref="PitExceptionHandler"/>, and
/// bodiless error statuses (404 for unknown routes, 405, ...) get one from the status pages.
/// </summary>
internal static class FhirErrorHandling
{
    public static IServiceCollection AddPitFhirErrors(this IServiceCollection services) =>
        services.AddExceptionHandler<PitExceptionHandler>();

    public static WebApplication UsePitFhirErrors(this WebApplication app)
    {
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            // Only reached when the handler above declined (the client went away): nothing useful can be sent.
            ExceptionHandler = _ => System.Threading.Tasks.Task.CompletedTask,
            SuppressDiagnosticsCallback = _ => true,
        });
        app.UseStatusCodePages(context => ForStatus(context.HttpContext).ExecuteAsync(context.HttpContext));
        return app;
    }

    private static PitProblem ForStatus(HttpContext context)
    {
        var status = context.Response.StatusCode;
        var (code, text) = status switch
        {
            404 => (OperationOutcome.IssueType.NotFound, "No such resource or endpoint."),
            405 => (OperationOutcome.IssueType.NotSupported, $"Method {context.Request.Method} is not supported here."),
            406 => (OperationOutcome.IssueType.NotSupported, "Only FHIR JSON (application/fhir+json) is offered."),
            415 => (OperationOutcome.IssueType.NotSupported, "Unsupported content type."),
            _ => (OperationOutcome.IssueType.Processing, $"The request failed with status {status}."),
        };
        return PitProblem.Error(status, code, text);
    }
}

/// <summary>
/// Turns exceptions into problems: an unreadable or too large body (400/413), a store that cannot be reached
/// (503 + Retry-After, however it shows: a transient database error or a submission the queue could not commit), a
/// process short of memory (503 + Retry-After),
/// and anything else as a 500 whose correlation id is also logged (never a stack trace).
/// </summary>
internal sealed partial class PitExceptionHandler(ILogger<PitExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (httpContext.RequestAborted.IsCancellationRequested && exception is not BadHttpRequestException)
        {
            return false;
        }

        var request = httpContext.Request;
        PitProblem problem;
        if (exception is BadHttpRequestException bad)
        {
            var tooLarge = bad.StatusCode == StatusCodes.Status413PayloadTooLarge;
            problem = PitProblem.Error(bad.StatusCode,
                tooLarge ? OperationOutcome.IssueType.TooLong : OperationOutcome.IssueType.Invalid,
                tooLarge ? "The request body is larger than the server accepts." : "The request could not be read.");
        }
        else if (exception is StoreUnavailableException { QueueFull: true })
        {
            problem = PitProblem.Unavailable("The server is taking in more submissions than it can store right now. Nothing was accepted; retry later.");
        }
        else if (exception is OutOfMemoryException)
        {
            // Many large bodies read or parsed at once (or a large page) can exhaust a capped heap. That is the
            // server's condition of the moment, not a bug and not the client's fault: nothing of this request was
            // accepted, and the same request succeeds once memory is freed, so 503 + Retry-After rather than 500.
            LogShortOfMemory(logger, request.Method, request.Path, PitProblem.CorrelationId(httpContext));
            problem = PitProblem.Unavailable("The server is short of memory right now. Nothing was accepted; retry later.");
        }
        else if (IsStoreUnreachable(exception))
        {
            LogStoreUnreachable(logger, exception, request.Method, request.Path, PitProblem.CorrelationId(httpContext));
            problem = PitProblem.StoreUnavailable();
        }
        else
        {
            LogUnexpected(logger, exception, PitProblem.CorrelationId(httpContext), request.Method, request.Path);
            problem = PitProblem.Unexpected();
        }

        await problem.ExecuteAsync(httpContext);
        return true;
    }

    // A database that is down or restarting is a transient condition (503 + Retry-After), not a server bug (500).
    private static bool IsStoreUnreachable(Exception ex) =>
        ex is StoreUnavailableException
        || ex is System.Data.Common.DbException { IsTransient: true }
        || ex.InnerException is System.Data.Common.DbException { IsTransient: true };

    // Debug: in an outage every request fails alike. Each one shows in the access log (503, correlation id), and the
    // store's background loops log one warning when the store starts and one when it stops failing (StoreOutageLog).
    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "The store could not be reached for {Method} {Path}; correlation id {CorrelationId}")]
    private static partial void LogStoreUnreachable(ILogger logger, Exception exception, string method, string path, string correlationId);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Out of memory on {Method} {Path}; answered 503; correlation id {CorrelationId}")]
    private static partial void LogShortOfMemory(ILogger logger, string method, string path, string correlationId);

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Unexpected failure on {Method} {Path}; correlation id {CorrelationId}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string correlationId, string method, string path);
}
