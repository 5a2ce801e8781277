using Pit.Server.Auth;
using Pit.Server.Telemetry;

namespace Pit.Server.Operability;

/// <summary>
/// One access-log line (event 51, category <c>Pit.Server.Access</c>) and one <c>pit.requests</c> count per answered
/// request: method, route template, status, duration, HelseID client id and organisation (<c>orgnr_parent</c>).
/// </summary>
/// <remarks>
/// The route template (<c>/v1/Patient/{id}</c>), never the raw path, which can hold ids, and never the query string,
/// which can hold an identity number. ASP.NET Core's HttpLogging logs the raw path and query unless an interceptor
/// removes them, and knows neither the route template nor the caller, so this small middleware is the simpler way.
/// It runs after the correlation middleware, so the line carries the correlation id in its scope.
/// </remarks>
internal static partial class AccessLog
{
    public const string Category = "Pit.Server.Access";

    public static WebApplication UsePitAccessLog(this WebApplication app)
    {
        var metrics = app.Services.GetRequiredService<PitMetrics>();
        var time = app.Services.GetRequiredService<TimeProvider>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(Category);
        app.Use(async (context, next) =>
        {
            var started = time.GetTimestamp();
            var status = StatusCodes.Status500InternalServerError;
            try
            {
                await next(context);
                status = context.Response.StatusCode;
            }
            finally
            {
                var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
                metrics.Request(route, status);
                if (logger.IsEnabled(LogLevel.Information))
                {
                    var user = context.User;
                    LogRequest(logger, context.Request.Method, route, status, Math.Round(time.GetElapsedTime(started).TotalMilliseconds, 1),
                        user.FindFirst(HelseIdClaims.ClientId)?.Value, user.FindFirst(HelseIdClaims.OrgnrParent)?.Value);
                }
            }
        });
        return app;
    }

    [LoggerMessage(EventId = 51, Level = LogLevel.Information,
        Message = "{Method} {Route} answered {StatusCode} in {DurationMs} ms for client {ClientId} of organisation {Organisation}")]
    private static partial void LogRequest(ILogger logger, string method, string route, int statusCode, double durationMs, string? clientId, string? organisation);
}
