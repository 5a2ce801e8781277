using Microsoft.Extensions.Options;
using Npgsql;

namespace Pit.Server.Storage.Postgres;

/// <summary>Settings of the PostgreSQL engine beyond <see cref="StorageOptions"/> (section <c>Pit:Storage</c>).</summary>
internal sealed class PostgresStoreOptions
{
    /// <summary>Attempts before a submission whose apply keeps throwing ends as Failed (default 5).</summary>
    public int MaxApplyAttempts { get; set; } = 5;

    /// <summary>Wait before the first retry of such a submission; doubles with each attempt (default 1 s).</summary>
    public TimeSpan ApplyRetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Upper bound of the wait between retries (default 1 min).</summary>
    public TimeSpan ApplyRetryMaxDelay { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Connection string of a streaming standby (or an Npgsql multi-host string with
    /// <c>Target Session Attributes=prefer-standby</c>) that serves GET /v1/Patient pages and reads by id. Empty
    /// (default): every read goes to the primary (<see cref="StorageOptions.ConnectionString"/>).
    /// </summary>
    public string? ReadConnectionString { get; set; }

    /// <summary>
    /// How often the replay position of the read connection is asked while long-poll waiters wait for it to replay a
    /// change (default 10 ms). Only asked while something waits.
    /// </summary>
    public TimeSpan StandbyPollInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How long a change may wait for the standby to replay it before its waiters are woken anyway (default 30 s): they
    /// re-run their query and answer what the standby has, stale but never wrong.
    /// </summary>
    public TimeSpan StandbyWaitTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether reads have a connection of their own.</summary>
    public bool HasReadConnection => !string.IsNullOrWhiteSpace(ReadConnectionString);
}

/// <summary>Checks <see cref="PostgresStoreOptions"/> at start-up; every message names its configuration key.</summary>
internal sealed class PostgresStoreOptionsValidator : IValidateOptions<PostgresStoreOptions>
{
    public ValidateOptionsResult Validate(string? name, PostgresStoreOptions options) =>
        Problems(options).ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;

    /// <summary>What is wrong with <paramref name="options"/>, if anything.</summary>
    public static IEnumerable<string> Problems(PostgresStoreOptions options)
    {
        if (options.MaxApplyAttempts < 1)
        {
            yield return "Pit:Storage:MaxApplyAttempts must be at least 1.";
        }

        if (options.ApplyRetryDelay <= TimeSpan.Zero)
        {
            yield return "Pit:Storage:ApplyRetryDelay must be positive.";
        }

        if (options.ApplyRetryMaxDelay < options.ApplyRetryDelay)
        {
            yield return "Pit:Storage:ApplyRetryMaxDelay must be at least Pit:Storage:ApplyRetryDelay.";
        }

        if (options.HasReadConnection && ReadConnectionProblem(options.ReadConnectionString!) is { } problem)
        {
            yield return problem;
        }

        if (options.StandbyPollInterval < TimeSpan.FromMilliseconds(1) || options.StandbyPollInterval > TimeSpan.FromSeconds(10))
        {
            yield return "Pit:Storage:StandbyPollInterval must be 1 ms-10 s.";
        }

        if (options.StandbyWaitTimeout < options.StandbyPollInterval)
        {
            yield return "Pit:Storage:StandbyWaitTimeout must be at least Pit:Storage:StandbyPollInterval.";
        }
    }

    // The message names the key that is wrong, never the string itself (it may hold a password).
    private static string? ReadConnectionProblem(string connectionString)
    {
        try
        {
            var settings = new NpgsqlConnectionStringBuilder(connectionString);
            return string.IsNullOrWhiteSpace(settings.Host) ? "Pit:Storage:ReadConnectionString must name a Host." : null;
        }
        catch (ArgumentException ex)
        {
            return $"Pit:Storage:ReadConnectionString is not a valid connection string ({ex.GetType().Name}).";
        }
    }
}
