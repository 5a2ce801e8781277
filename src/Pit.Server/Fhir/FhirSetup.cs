using System.Net;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;

namespace Pit.Server.Fhir;

internal static partial class FhirSetup
{
    public static IServiceCollection AddPitFhir(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PitOptions>().Bind(configuration.GetSection("Pit"))
            .Validate(o => o.PublicBaseUrl is null || Uri.TryCreate(o.PublicBaseUrl, UriKind.Absolute, out _),
                "Pit:PublicBaseUrl must be an absolute URL.")
            .ValidateOnStart();
        services.AddSingleton<FhirJson>();
        services.AddSingleton<PublicBaseUrl>();
        services.AddSingleton<CapabilityStatementSource>();
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<PitOptions>>((forwarded, pit) =>
        {
            forwarded.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto | ForwardedHeaders.XForwardedHost;
            foreach (var proxy in pit.Value.KnownProxies)
            {
                forwarded.KnownProxies.Add(IPAddress.Parse(proxy));
            }
        });
        return services;
    }

    /// <summary>
    /// Every error leaves as an OperationOutcome: unexpected exceptions become a 500 carrying a correlation id that
    /// is also logged (never a stack trace), and bodiless error statuses (404 for unknown routes, 405, ...) get one.
    /// </summary>
    public static WebApplication UsePitFhirErrors(this WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Pit.Server.Errors");
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context);
            }
            catch (BadHttpRequestException ex) when (!context.Response.HasStarted)
            {
                var tooLarge = ex.StatusCode == StatusCodes.Status413PayloadTooLarge;
                await FhirResults.WriteAsync(context, Outcomes.Error(
                    tooLarge ? OperationOutcome.IssueType.TooLong : OperationOutcome.IssueType.Invalid,
                    tooLarge ? "The request body is larger than the server accepts." : "The request could not be read."), ex.StatusCode);
            }
            catch (Exception ex) when (!context.Response.HasStarted && IsStoreUnreachable(ex))
            {
                LogStoreUnreachable(logger, ex, context.Request.Method, context.Request.Path);
                context.Response.Clear();
                context.Response.Headers.RetryAfter = "5";
                await FhirResults.WriteAsync(context, Outcomes.Error(OperationOutcome.IssueType.Transient,
                    "The service cannot reach its store right now. Nothing was done; retry later."), StatusCodes.Status503ServiceUnavailable);
            }
            catch (Exception ex) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                var correlationId = Operability.CorrelationIds.Of(context);
                LogUnexpected(logger, ex, correlationId, context.Request.Method, context.Request.Path);
                context.Response.Clear();
                await FhirResults.WriteAsync(context, Outcomes.Error(OperationOutcome.IssueType.Exception,
                    $"An unexpected error occurred. Correlation id: {correlationId}."), StatusCodes.Status500InternalServerError);
            }
        });
        app.UseStatusCodePages(async statusContext =>
        {
            var context = statusContext.HttpContext;
            var status = context.Response.StatusCode;
            var (code, text) = status switch
            {
                404 => (OperationOutcome.IssueType.NotFound, "No such resource or endpoint."),
                405 => (OperationOutcome.IssueType.NotSupported, $"Method {context.Request.Method} is not supported here."),
                406 => (OperationOutcome.IssueType.NotSupported, "Only FHIR JSON (application/fhir+json) is offered."),
                415 => (OperationOutcome.IssueType.NotSupported, "Unsupported content type."),
                _ => (OperationOutcome.IssueType.Processing, $"The request failed with status {status}."),
            };
            await FhirResults.WriteAsync(context, Outcomes.Error(code, text), status);
        });
        app.UseForwardedHeaders();
        return app;
    }

    public static WebApplication MapPitMetadata(this WebApplication app)
    {
        app.MapGet("/v1/metadata", (HttpContext context, CapabilityStatementSource source) =>
            FhirResults.Json(source.Get(context))).AllowAnonymous();
        return app;
    }

    // A database that is down or restarting is a transient condition (503 + Retry-After), not a server bug (500).
    private static bool IsStoreUnreachable(Exception ex) =>
        ex is System.Data.Common.DbException { IsTransient: true } || ex.InnerException is System.Data.Common.DbException { IsTransient: true };

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "The store could not be reached for {Method} {Path}")]
    private static partial void LogStoreUnreachable(ILogger logger, Exception exception, string method, string path);

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Unexpected failure on {Method} {Path}; correlation id {CorrelationId}")]
    private static partial void LogUnexpected(ILogger logger, Exception exception, string correlationId, string method, string path);
}
