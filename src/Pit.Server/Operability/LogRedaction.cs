using System.Text;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Pit.Server.Operability;

/// <summary>
/// Keeps request paths and query strings out of every log line, whoever writes it: ASP.NET Core's own request logs
/// ("Request starting ... /v1/Patient?identifier=...") and scopes (<c>RequestPath</c>) included. A careless client can
/// put an identity number in a URL; the log then shows the first two path segments only, the rest and the query
/// replaced by <c>{redacted}</c>. The correlation id links the line to the request.
/// </summary>
internal static class LogRedaction
{
    public const string Redacted = "{redacted}";

    private static readonly HashSet<string> PathKeys = new(StringComparer.Ordinal) { "Path", "RequestPath", "path" };
    private static readonly HashSet<string> QueryKeys = new(StringComparer.Ordinal) { "QueryString", "Query" };

    /// <summary>Replaces the logger factory with one whose loggers redact paths and queries.</summary>
    public static IServiceCollection AddPitLogRedaction(this IServiceCollection services)
    {
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new RedactingLoggerFactory(new LoggerFactory(
            sp.GetServices<ILoggerProvider>(),
            sp.GetRequiredService<IOptionsMonitor<LoggerFilterOptions>>(),
            sp.GetService<IOptions<LoggerFactoryOptions>>(),
            sp.GetService<IExternalScopeProvider>()))));
        return services;
    }

    /// <summary><c>/v1/Patient/{redacted}</c> for <c>/v1/Patient/12345678901</c>.</summary>
    public static string Path(string path)
    {
        var slash = -1;
        for (var i = 0; i < 3; i++)
        {
            slash = path.IndexOf('/', slash + 1);
            if (slash < 0)
            {
                return path;
            }
        }

        return slash == path.Length - 1 ? path : path[..(slash + 1)] + Redacted;
    }

    /// <summary>Returns a redacted copy of <paramref name="state"/>, or null when it holds no path or query.</summary>
    public static RedactedState? Redact(object? state)
    {
        if (state is not IReadOnlyList<KeyValuePair<string, object?>> pairs)
        {
            return null;
        }

        KeyValuePair<string, object?>[]? copy = null;
        for (var i = 0; i < pairs.Count; i++)
        {
            var (key, value) = pairs[i];
            object? replacement = PathKeys.Contains(key) ? Path(value?.ToString() ?? "")
                : QueryKeys.Contains(key) ? (value?.ToString() is { Length: > 0 } ? "?" + Redacted : "")
                : null;
            if (replacement is not null && !Equals(replacement, value))
            {
                copy ??= [.. pairs];
                copy[i] = new(key, replacement);
            }
        }

        return copy is null ? null : new RedactedState(copy);
    }

    /// <summary>A log state with redacted values; renders its message template from them.</summary>
    internal sealed class RedactedState(KeyValuePair<string, object?>[] pairs) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public int Count => pairs.Length;

        public KeyValuePair<string, object?> this[int index] => pairs[index];

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => ((IEnumerable<KeyValuePair<string, object?>>)pairs).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString()
        {
            var template = pairs.FirstOrDefault(p => p.Key == "{OriginalFormat}").Value as string;
            if (template is null)
            {
                return string.Join(' ', pairs.Select(p => $"{p.Key}:{p.Value}"));
            }

            // Message templates are positional: the n-th placeholder takes the n-th value.
            var text = new StringBuilder(template.Length + 32);
            var index = 0;
            for (var i = 0; i < template.Length; i++)
            {
                if (template[i] == '{' && i + 1 < template.Length && template[i + 1] == '{')
                {
                    text.Append('{');
                    i++;
                }
                else if (template[i] == '{' && template.IndexOf('}', i) is var end and > 0)
                {
                    text.Append(index < pairs.Length ? pairs[index++].Value : null);
                    i = end;
                }
                else if (template[i] == '}' && i + 1 < template.Length && template[i + 1] == '}')
                {
                    text.Append('}');
                    i++;
                }
                else
                {
                    text.Append(template[i]);
                }
            }

            return text.ToString();
        }
    }

    private sealed class RedactingLoggerFactory(ILoggerFactory inner) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose() => inner.Dispose();
    }

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull =>
            Redact(state) is { } redacted ? inner.BeginScope(redacted) : inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
            {
                return;
            }

            if (Redact(state) is { } redacted)
            {
                inner.Log(logLevel, eventId, redacted, exception, static (s, _) => s.ToString());
            }
            else
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
