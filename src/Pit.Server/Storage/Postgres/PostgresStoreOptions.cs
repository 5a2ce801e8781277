using Microsoft.Extensions.Options;

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
    }
}
