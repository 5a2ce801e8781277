using Microsoft.Extensions.Options;

namespace Pit.Server.Operability;

/// <summary>Options of section <c>Pit:RateLimiting</c>: a token bucket per client (client_id + orgnr_parent).</summary>
internal sealed class RateLimitingOptions
{
    /// <summary>Limit authenticated callers at all (default true).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Sustained requests per second per client (default 200). Below 1 means one request every 1/n seconds.</summary>
    public double PermitsPerSecond { get; set; } = 200;

    /// <summary>Requests a client may send at once after being idle: the bucket size (default 400).</summary>
    public int Burst { get; set; } = 400;

    /// <summary>Overrides by client id (<c>Pit:RateLimiting:Clients:{clientId}:PermitsPerSecond</c>, <c>...:Burst</c>).</summary>
    public Dictionary<string, ClientRateLimit> Clients { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The limit that applies to <paramref name="clientId"/>.</summary>
    internal (double PermitsPerSecond, int Burst) For(string clientId) =>
        Clients.TryGetValue(clientId, out var client)
            ? (client.PermitsPerSecond ?? PermitsPerSecond, client.Burst ?? Burst)
            : (PermitsPerSecond, Burst);
}

/// <summary>One client's override; unset values fall back to the defaults.</summary>
internal sealed class ClientRateLimit
{
    /// <summary>Sustained requests per second for this client.</summary>
    public double? PermitsPerSecond { get; set; }

    /// <summary>Bucket size for this client.</summary>
    public int? Burst { get; set; }
}

/// <summary>Refuses to start with limits that could not work (zero, negative or absurd values).</summary>
internal sealed class RateLimitingOptionsValidator : IValidateOptions<RateLimitingOptions>
{
    private const double MaxPermits = 1_000_000;

    public ValidateOptionsResult Validate(string? name, RateLimitingOptions options)
    {
        var failures = new List<string>();
        Check(failures, "Pit:RateLimiting", options.PermitsPerSecond, options.Burst);
        foreach (var (clientId, client) in options.Clients)
        {
            Check(failures, $"Pit:RateLimiting:Clients:{clientId}", client.PermitsPerSecond ?? options.PermitsPerSecond, client.Burst ?? options.Burst);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Check(List<string> failures, string section, double permits, int burst)
    {
        if (!(permits >= 0.001 && permits <= MaxPermits))
        {
            failures.Add($"{section}:PermitsPerSecond must be between 0.001 and {MaxPermits:0}.");
        }

        if (burst < 1 || burst > MaxPermits)
        {
            failures.Add($"{section}:Burst must be between 1 and {MaxPermits:0}.");
        }
    }
}
