using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// Keeps every log entry of a server at every level, with its message, its structured values, its exception and the
/// values of all scopes it was written in, so tests can read exactly what an operator's log pipeline would receive.
/// </summary>
public sealed class CapturingLoggerProvider : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<CapturedLog> _entries = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

    public IReadOnlyCollection<CapturedLog> Entries => _entries;

    /// <summary>Registers this provider on <paramref name="builder"/> at Trace level, whatever other filters say.</summary>
    public void AddTo(WebApplicationBuilder builder)
    {
        builder.Logging.AddProvider(this);
        builder.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Trace);
    }

    /// <summary>All captured text: messages, values, exceptions and scopes.</summary>
    public string AllText() => string.Join('\n', _entries.Select(e => e.Text));

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => provider._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = new Dictionary<string, string?>(StringComparer.Ordinal);
            var stateValues = new Dictionary<string, string?>(StringComparer.Ordinal);
            var text = new StringBuilder().Append(category).Append(' ').Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    stateValues[key] = value is IFormattable formattable ? formattable.ToString(null, System.Globalization.CultureInfo.InvariantCulture) : value?.ToString();
                    text.Append(' ').Append(key).Append('=').Append(value);
                }
            }

            provider._scopes.ForEachScope((scope, _) =>
            {
                text.Append(" scope:").Append(scope);
                if (scope is IEnumerable<KeyValuePair<string, object?>> scopePairs)
                {
                    foreach (var (key, value) in scopePairs)
                    {
                        values[key] = value?.ToString();
                        text.Append(' ').Append(key).Append('=').Append(value);
                    }
                }
            }, (object?)null);
            if (exception is not null)
            {
                text.Append(' ').Append(exception);
            }

            provider._entries.Enqueue(new CapturedLog(category, logLevel, text.ToString(), values) { EventId = eventId.Id, Values = stateValues, Exception = exception });
        }
    }
}

/// <summary>
/// One captured entry; <see cref="ScopeValues"/> holds the structured values of its scopes, <see cref="Values"/> those
/// of the entry itself (its message template's placeholders, invariant culture).
/// </summary>
public sealed record CapturedLog(string Category, LogLevel Level, string Text, IReadOnlyDictionary<string, string?> ScopeValues)
{
    public int EventId { get; init; }

    public IReadOnlyDictionary<string, string?> Values { get; init; } = new Dictionary<string, string?>();

    public Exception? Exception { get; init; }
}
