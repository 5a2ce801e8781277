namespace Pit.Server.Storage;

/// <summary>
/// The log of one background loop that retries store work until it succeeds (apply, group commit, audit writes,
/// LISTEN, replay-cache writes). An outage then writes one warning when the loop starts failing (exception type and
/// message, no stack trace) and one when it succeeds again (how long it failed, how many attempts), instead of a
/// stack trace per retry. Each retry is still logged at Debug level with its exception, for a closer look.
/// </summary>
/// <remarks>Events: 60 failing, 61 succeeds again, 62 one more failed attempt (Debug).</remarks>
internal sealed partial class StoreOutageLog(ILogger logger, string work, TimeProvider time)
{
    private readonly Lock _lock = new();
    private int _failing;
    private DateTimeOffset _since;
    private int _failures;

    /// <summary>Whether the latest attempt failed.</summary>
    public bool Failing => Volatile.Read(ref _failing) == 1;

    /// <summary>One attempt failed; the first of a run logs a warning.</summary>
    public void Failed(Exception exception)
    {
        bool first;
        int failures;
        lock (_lock)
        {
            first = _failing == 0;
            if (first)
            {
                _since = time.GetUtcNow();
                _failures = 0;
                Volatile.Write(ref _failing, 1);
            }

            failures = ++_failures;
        }

        if (first)
        {
            LogFailing(logger, work, exception.GetType().Name, MessageOf(exception));
        }
        else
        {
            LogFailedAgain(logger, exception, work, failures);
        }
    }

    /// <summary>One attempt succeeded; after a failing run this logs a warning that the work succeeds again.</summary>
    public void Succeeded()
    {
        // The common case costs one read: nothing was failing.
        if (Volatile.Read(ref _failing) == 0)
        {
            return;
        }

        TimeSpan duration;
        int failures;
        lock (_lock)
        {
            if (_failing == 0)
            {
                return;
            }

            duration = time.GetUtcNow() - _since;
            failures = _failures;
            Volatile.Write(ref _failing, 0);
        }

        LogRecovered(logger, work, Math.Round(duration.TotalSeconds, 1), failures);
    }

    /// <summary>
    /// The exception's message, except where a database might quote data in it: a database error outside the classes
    /// of an outage (SQLSTATE 08 connection, 53 resources, 57 operator intervention, 58 system) is named by its SQLSTATE
    /// only, since some messages (invalid input syntax, for one) quote the value that was sent.
    /// </summary>
    internal static string MessageOf(Exception exception) =>
        exception is System.Data.Common.DbException { SqlState: { Length: 5 } state } && state[..2] is not ("08" or "53" or "57" or "58")
            ? $"SQLSTATE {state}"
            : exception.Message;

    [LoggerMessage(EventId = 60, Level = LogLevel.Warning,
        Message = "{Work} failed: {ExceptionType}: {ExceptionMessage}. Retrying until the store answers; the next line about it says when it succeeds again")]
    private static partial void LogFailing(ILogger logger, string work, string exceptionType, string exceptionMessage);

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "{Work} succeeds again after {OutageSeconds} s and {Failures} failed attempts")]
    private static partial void LogRecovered(ILogger logger, string work, double outageSeconds, int failures);

    [LoggerMessage(EventId = 62, Level = LogLevel.Debug, Message = "{Work} failed again ({Failures} in a row)")]
    private static partial void LogFailedAgain(ILogger logger, Exception exception, string work, int failures);
}
