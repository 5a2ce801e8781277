using System.Diagnostics;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Hosting;

namespace Pit.Server.Operability;

/// <summary>
/// Gives every request one correlation id: a well-formed <c>X-Correlation-Id</c> sent by the client is kept (1-64
/// characters of <c>A-Z a-z 0-9 . _ -</c>); anything else is replaced by the request's trace id. The id is returned
/// in the response header, carried by every log line of the request (a logging scope) and by 5xx outcomes.
/// </summary>
internal static partial class CorrelationIds
{
    public const string HeaderName = "X-Correlation-Id";

    private const string ItemKey = "Pit.CorrelationId";

    /// <summary>The request's correlation id (made on first use when the middleware did not run).</summary>
    public static string Of(HttpContext context)
    {
        if (context.Items.TryGetValue(ItemKey, out var value) && value is string id)
        {
            return id;
        }

        id = Choose(context.Request.Headers[HeaderName]);
        context.Items[ItemKey] = id;
        return id;
    }

    /// <summary>Whether <paramref name="value"/> may be used as a correlation id as sent.</summary>
    public static bool IsWellFormed(string? value) => value is not null && WellFormed().IsMatch(value);

    /// <summary>
    /// Runs the correlation middleware ahead of everything else (host filtering and routing included), so every log
    /// line of the pipeline carries the id; only the host's own "Request starting/finished" lines come before it.
    /// </summary>
    public static IServiceCollection AddPitCorrelationIds(this IServiceCollection services)
    {
        services.Insert(0, ServiceDescriptor.Transient<IStartupFilter, CorrelationStartupFilter>());
        return services;
    }

    private static async Task InvokeAsync(HttpContext context, RequestDelegate next, ILogger logger)
    {
        var id = Of(context);

        // Set when the response starts: error handlers clear the headers of a response they replace.
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[HeaderName] = id;
            return Task.CompletedTask;
        });
        Activity.Current?.SetTag("pit.correlation_id", id);
        using (logger.BeginScope(new CorrelationScope(id)))
        {
            await next(context);
        }
    }

    private sealed class CorrelationStartupFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Pit.Server.Requests");
            app.Use((context, following) => InvokeAsync(context, following, logger));
            next(app);
        };
    }

    private static string Choose(Microsoft.Extensions.Primitives.StringValues sent)
    {
        if (sent.Count == 1 && IsWellFormed(sent[0]))
        {
            return sent[0]!;
        }

        return Activity.Current is { } activity && activity.TraceId != default
            ? activity.TraceId.ToHexString()
            : ActivityTraceId.CreateRandom().ToHexString();
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex WellFormed();

    /// <summary>The scope state: structured (<c>CorrelationId</c>) for providers that read it, readable as text.</summary>
    private sealed class CorrelationScope(string id) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public int Count => 1;

        public KeyValuePair<string, object?> this[int index] =>
            index == 0 ? new("CorrelationId", id) : throw new ArgumentOutOfRangeException(nameof(index));

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            yield return this[0];
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => $"CorrelationId:{id}";
    }
}
