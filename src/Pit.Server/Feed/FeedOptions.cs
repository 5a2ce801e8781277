using Microsoft.Extensions.Options;

namespace Pit.Server.Feed;

/// <summary>Options of section <c>Pit:Feed</c>: long polling of the change feed (<c>Prefer: wait=N</c>).</summary>
internal sealed class FeedOptions
{
    /// <summary>The longest a search may be held (default and upper limit 30 s); a longer <c>wait</c> is clamped to it. Zero turns waiting off.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Searches one client (client_id + orgnr_parent) may have waiting at once (default 4); more are answered at once.</summary>
    public int MaxWaitersPerClient { get; set; } = 4;

    /// <summary>Searches this instance holds at once over all clients (default 2000); more are answered at once.</summary>
    public int MaxWaiters { get; set; } = 2000;
}

/// <summary>Checks <see cref="FeedOptions"/> at start-up; every message names its configuration key.</summary>
internal sealed class FeedOptionsValidator : IValidateOptions<FeedOptions>
{
    public static readonly TimeSpan UpperLimit = TimeSpan.FromSeconds(30);

    public ValidateOptionsResult Validate(string? name, FeedOptions options)
    {
        var problems = new List<string>();
        if (options.MaxWait < TimeSpan.Zero || options.MaxWait > UpperLimit)
        {
            problems.Add("Pit:Feed:MaxWait must be from 00:00:00 to 00:00:30.");
        }

        if (options.MaxWaitersPerClient < 0)
        {
            problems.Add("Pit:Feed:MaxWaitersPerClient must not be negative.");
        }

        if (options.MaxWaiters < 0)
        {
            problems.Add("Pit:Feed:MaxWaiters must not be negative.");
        }

        return problems.Count > 0 ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}

internal static class FeedSetup
{
    /// <summary>Long polling: options, the waiter limits and the wait loop. The signal itself comes with the storage engine.</summary>
    public static IServiceCollection AddPitFeed(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<FeedOptions>().Bind(configuration.GetSection("Pit:Feed")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<FeedOptions>, FeedOptionsValidator>();
        services.AddSingleton<FeedWaiterLimits>();
        services.AddSingleton<FeedLongPoll>();
        return services;
    }
}
