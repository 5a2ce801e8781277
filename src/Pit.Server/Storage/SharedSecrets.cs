using System.Security.Cryptography;
using Microsoft.Extensions.Options;

namespace Pit.Server.Storage;

/// <summary>Options of section <c>Pit:Secrets</c>: secret name to base64 value.</summary>
internal sealed class SharedSecretOptions
{
    /// <summary>The smallest secret accepted, in bytes.</summary>
    public const int MinimumBytes = 32;

    /// <summary>
    /// The configured secrets by name, still base64; blank values count as not configured. Names ignore case, as
    /// configuration keys do (<c>Pit__Secrets__Cursor</c> sets <c>cursor</c>).
    /// </summary>
    public Dictionary<string, string> Values { get; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Checks every <c>Pit:Secrets:{name}</c> at start-up: base64 of at least 32 bytes.</summary>
internal sealed class SharedSecretOptionsValidator : IValidateOptions<SharedSecretOptions>
{
    public ValidateOptionsResult Validate(string? name, SharedSecretOptions options)
    {
        var problems = options.Values
            .Where(v => !string.IsNullOrWhiteSpace(v.Value) && Decode(v.Value) is not { Length: >= SharedSecretOptions.MinimumBytes })
            .Select(v => $"Pit:Secrets:{v.Key} must be base64 of at least {SharedSecretOptions.MinimumBytes} bytes.")
            .ToList();
        return problems.Count > 0 ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }

    /// <summary>The bytes of <paramref name="base64"/>, or null when it is not base64.</summary>
    public static byte[]? Decode(string base64)
    {
        var buffer = new byte[base64.Length];
        return Convert.TryFromBase64String(base64.Trim(), buffer, out var written) ? buffer[..written] : null;
    }
}

/// <summary>
/// Secrets every instance over one store must share (the cursor key, ...): taken from configuration when given
/// (<c>Pit:Secrets:{name}</c>, base64, validated at start-up), otherwise generated once and kept in the store.
/// </summary>
internal sealed class SharedSecrets(ISharedSecretStore store, IOptions<SharedSecretOptions> options)
{
    /// <summary>The 32-byte secret called <paramref name="name"/>.</summary>
    public async Task<byte[]> GetAsync(string name, CancellationToken cancellationToken)
    {
        if (options.Value.Values.TryGetValue(name, out var configured) && !string.IsNullOrWhiteSpace(configured))
        {
            return SharedSecretOptionsValidator.Decode(configured)!;
        }

        return await store.GetOrCreateSecretAsync(name, () => RandomNumberGenerator.GetBytes(SharedSecretOptions.MinimumBytes), cancellationToken);
    }

    /// <summary>
    /// The retired secret <c>Pit:Secrets:{name}Previous</c> when configured, else null: accepted for verification
    /// only while a key rotation settles, never used to seal anything new, never generated.
    /// </summary>
    public byte[]? GetPrevious(string name) =>
        options.Value.Values.TryGetValue(name + "Previous", out var configured) && !string.IsNullOrWhiteSpace(configured)
            ? SharedSecretOptionsValidator.Decode(configured)
            : null;
}

internal static class SharedSecretsSetup
{
    public static IServiceCollection AddSharedSecrets(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SharedSecretOptions>()
            .Configure(o =>
            {
                foreach (var secret in configuration.GetSection("Pit:Secrets").GetChildren())
                {
                    o.Values[secret.Key] = secret.Value ?? "";
                }
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<SharedSecretOptions>, SharedSecretOptionsValidator>();
        services.AddSingleton<SharedSecrets>();
        return services;
    }
}
