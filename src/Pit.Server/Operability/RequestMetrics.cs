using Pit.Server.Telemetry;

namespace Pit.Server.Operability;

/// <summary>Counts every answered request by route template (never the raw path, which holds ids) and status.</summary>
internal static class RequestMetrics
{
    public static WebApplication UsePitRequestMetrics(this WebApplication app)
    {
        var metrics = app.Services.GetRequiredService<PitMetrics>();
        app.Use(async (context, next) =>
        {
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
            }
        });
        return app;
    }
}
