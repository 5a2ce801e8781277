using Microsoft.Net.Http.Headers;
using System.Globalization;
using System.Threading.RateLimiting;
using Hl7.Fhir.Model;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Pit.Server.Auth;
using Pit.Server.Fhir;
using Pit.Server.Telemetry;

namespace Pit.Server.Operability;

/// <summary>
/// A token bucket per authenticated client (client_id + orgnr_parent), so one client's flood uses only its own
/// bucket and never refuses another client. Anonymous requests (they are refused by authentication anyway), health,
/// metadata, the API reference and the OpenAPI document are never limited.
/// </summary>
internal static class PitRateLimiting
{
    private static readonly string[] ExemptPrefixes = ["/health", "/v1/metadata", "/docs", "/openapi"];

    public static IServiceCollection AddPitRateLimiting(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<RateLimitingOptions>().Bind(configuration.GetSection("Pit:RateLimiting")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<RateLimitingOptions>, RateLimitingOptionsValidator>();
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitingOptions>>((limiter, pit) =>
        {
            var settings = pit.Value;
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, ClientKey>(context => Partition(context, settings));
            limiter.OnRejected = OnRejectedAsync;
        });
        return services;
    }

    public static WebApplication UsePitRateLimiting(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<RateLimitingOptions>>().Value.Enabled)
        {
            app.UseRateLimiter();
        }

        return app;
    }

    private static RateLimitPartition<ClientKey> Partition(HttpContext context, RateLimitingOptions settings)
    {
        var user = context.User;
        var clientId = user.Identity?.IsAuthenticated == true ? user.FindFirst(HelseIdClaims.ClientId)?.Value : null;
        if (clientId is null || IsExempt(context.Request.Path))
        {
            return RateLimitPartition.GetNoLimiter(ClientKey.None);
        }

        var key = new ClientKey(clientId, user.FindFirst(HelseIdClaims.OrgnrParent)?.Value ?? "");
        return RateLimitPartition.GetTokenBucketLimiter(key, k => Bucket(settings.For(k.ClientId)));
    }

    /// <summary>Whole requests per second become one period of 1 s; slower rates one token every 1/n seconds.</summary>
    internal static TokenBucketRateLimiterOptions Bucket((double PermitsPerSecond, int Burst) limit)
    {
        var whole = limit.PermitsPerSecond >= 1;
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = limit.Burst,
            TokensPerPeriod = whole ? (int)Math.Round(limit.PermitsPerSecond) : 1,
            ReplenishmentPeriod = whole ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(1 / limit.PermitsPerSecond),
            QueueLimit = 0,

            // The partitioned limiter replenishes every bucket from one timer instead of a timer per client.
            AutoReplenishment = false,
        };
    }

    private static bool IsExempt(PathString path)
    {
        foreach (var prefix in ExemptPrefixes)
        {
            if (path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static async ValueTask OnRejectedAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var context = rejected.HttpContext;
        var retryAfter = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        context.RequestServices.GetRequiredService<PitMetrics>().RateLimited(context.User.FindFirst(HelseIdClaims.ClientId)?.Value ?? "unknown");
        await PitProblem.Error(StatusCodes.Status429TooManyRequests, OperationOutcome.IssueType.Throttled,
                $"Too many requests from this client. Retry after {seconds} s.")
            .WithHeader(HeaderNames.RetryAfter, seconds.ToString(CultureInfo.InvariantCulture))
            .ExecuteAsync(context);
    }

    /// <summary>The partition of one client of one organisation.</summary>
    private readonly record struct ClientKey(string ClientId, string Organisation)
    {
        public static ClientKey None => default;
    }
}
