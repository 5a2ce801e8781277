using System.Security.Cryptography;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Storage;

/// <summary>Options of section <c>Pit:Storage</c>.</summary>
public sealed class StorageOptions
{
    /// <summary><c>Sqlite</c> (default) or <c>Postgres</c>.</summary>
    public string Provider { get; set; } = "Sqlite";

    /// <summary>Engine connection string; for SQLite the default is <c>Data Source=data/pit.db</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Apply schema migrations at start-up (default true).</summary>
    public bool MigrateOnStartup { get; set; } = true;
}

internal static class StorageSetup
{
    public static IServiceCollection AddPitStorage(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment)
    {
        services.TryAddTimeProvider();
        services.AddOptions<StorageOptions>().Bind(configuration.GetSection("Pit:Storage"))
            .Validate(o => o.Provider is "Sqlite" or "Postgres", "Pit:Storage:Provider must be Sqlite or Postgres.")
            .Validate(o => o.Provider != "Postgres" || !string.IsNullOrWhiteSpace(o.ConnectionString),
                "Pit:Storage:ConnectionString is required for the Postgres provider.")
            .ValidateOnStart();
        services.AddSingleton<IPitStore>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            var time = sp.GetRequiredService<TimeProvider>();
            return options.Provider switch
            {
                "Postgres" => PostgresPitStore.Create(sp, options),
                _ => new SqlitePitStore(
                    options.ConnectionString ?? $"Data Source={Path.Combine(environment.ContentRootPath, "data", "pit.db")}", time),
            };
        });
        if (configuration["Pit:Storage:Provider"] == "Postgres")
        {
            services.AddPitPostgresServices();
        }

        services.AddSingleton<SharedSecrets>();
        services.AddHostedService<StoreInitializer>();
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: ["ready"]);
        return services;
    }

    public static WebApplication MapPitHealth(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new() { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new() { Predicate = c => c.Tags.Contains("ready") });
        return app;
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }

    /// <summary>Creates or migrates the schema before the server takes requests.</summary>
    private sealed class StoreInitializer(IPitStore store, IOptions<StorageOptions> options) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) =>
            options.Value.MigrateOnStartup ? store.InitializeAsync(cancellationToken) : Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class StoreHealthCheck(IPitStore store) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                await store.CheckHealthAsync(timeout.Token);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy("The store cannot be reached.");
            }
        }
    }
}

/// <summary>
/// Secrets every instance over one store must share (the cursor key, ...): taken from configuration when given
/// (<c>Pit:Secrets:{name}</c>, base64), otherwise generated once and kept in the store.
/// </summary>
public sealed class SharedSecrets(IPitStore store, IConfiguration configuration)
{
    /// <summary>The 32-byte secret called <paramref name="name"/>.</summary>
    public async Task<byte[]> GetAsync(string name, CancellationToken cancellationToken)
    {
        var configured = configuration[$"Pit:Secrets:{name}"];
        if (!string.IsNullOrWhiteSpace(configured))
        {
            var key = Convert.FromBase64String(configured);
            return key.Length >= 32 ? key : throw new InvalidOperationException($"Pit:Secrets:{name} must be at least 32 bytes (base64).");
        }

        return await store.GetOrCreateSecretAsync(name, () => RandomNumberGenerator.GetBytes(32), cancellationToken);
    }
}
