using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Storage;

/// <summary>Options of section <c>Pit:Storage</c>.</summary>
internal sealed class StorageOptions
{
    /// <summary><c>Sqlite</c> (default) or <c>Postgres</c>.</summary>
    public string Provider { get; set; } = "Sqlite";

    /// <summary>Engine connection string; for SQLite the default is <c>Data Source=data/pit.db</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Apply schema migrations at start-up (default true).</summary>
    public bool MigrateOnStartup { get; set; } = true;

    /// <summary>
    /// Processed (not queued) submissions are deleted this many days after processing (default 30); their status URL
    /// then answers 404. 1-3650.
    /// </summary>
    public int SubmissionRetentionDays { get; set; } = 30;
}

/// <summary>Checks <see cref="StorageOptions"/> at start-up; every message names its configuration key.</summary>
internal sealed class StorageOptionsValidator : IValidateOptions<StorageOptions>
{
    public ValidateOptionsResult Validate(string? name, StorageOptions options)
    {
        if (options.Provider is not ("Sqlite" or "Postgres"))
        {
            return ValidateOptionsResult.Fail("Pit:Storage:Provider must be Sqlite or Postgres.");
        }

        if (options.SubmissionRetentionDays is < 1 or > 3650)
        {
            return ValidateOptionsResult.Fail("Pit:Storage:SubmissionRetentionDays must be 1-3650.");
        }

        return options.Provider == "Postgres" && string.IsNullOrWhiteSpace(options.ConnectionString)
            ? ValidateOptionsResult.Fail("Pit:Storage:ConnectionString is required for the Postgres provider.")
            : ValidateOptionsResult.Success;
    }
}

/// <summary>The store's schema is older than this build needs, and start-up was told not to migrate it.</summary>
internal sealed class StoreSchemaException(string message) : Exception(message);

internal static class StorageSetup
{
    /// <summary>
    /// The store of the configured provider (<c>Pit:Storage:Provider</c>): each provider registers all of its own
    /// services; this adds what every provider shares (options, shared secrets, migration at start-up, readiness).
    /// </summary>
    public static IServiceCollection AddPitStorage(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment)
    {
        services.TryAddTimeProvider();
        services.AddOptions<StorageOptions>().Bind(configuration.GetSection("Pit:Storage")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<StorageOptions>, StorageOptionsValidator>();
        // Pit:Processing:SequencerInterval is PostgreSQL's, but a wrong value stops every provider's start-up.
        PostgresSequencerOptions.Register(services, configuration);
        if (configuration["Pit:Storage:Provider"] == "Postgres")
        {
            services.AddPostgresStorage(configuration);
        }
        else
        {
            services.AddSqliteStorage(environment);
        }

        services.AddSharedSecrets(configuration);
        services.AddOptions<Audit.AuditOptions>().Bind(configuration.GetSection("Pit:Audit"))
            .Validate(o => o.RetentionDays is >= 1 and <= 3650, "Pit:Audit:RetentionDays must be 1-3650.")
            .Validate(o => o.ReadinessBacklog >= 1, "Pit:Audit:ReadinessBacklog must be positive.")
            .ValidateOnStart();
        services.AddHostedService<StoreInitializer>();
        services.AddSingleton<StoreRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<StoreRetention>());
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: ["ready"]);
        return services;
    }

    /// <summary>Registers <paramref name="create"/>'s engine once, behind every store interface.</summary>
    public static IServiceCollection AddStoreEngine<TEngine>(this IServiceCollection services, Func<IServiceProvider, TEngine> create)
        where TEngine : class, IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IAuditExportStore, IRetentionStore, IStoreHealth
    {
        services.AddSingleton(create);
        services.AddSingleton<IStoreMigrator>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<ISubmissionQueueStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<IPatientFeedStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<ISharedSecretStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<IAuditStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<IAuditExportStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<IRetentionStore>(sp => sp.GetRequiredService<TEngine>());
        services.AddSingleton<IStoreHealth>(sp => sp.GetRequiredService<TEngine>());
        return services;
    }

    public static WebApplication MapPitHealth(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new() { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new() { Predicate = c => c.Tags.Contains("ready"), ResponseWriter = Operability.HealthReportJson.WriteAsync });
        return app;
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider)))
        {
            services.AddSingleton(TimeProvider.System);
        }
    }

    /// <summary>
    /// Creates or migrates the schema before the server takes requests; with <c>MigrateOnStartup=false</c> it only
    /// checks that someone has (<c>migrate</c>), so a server never runs on a schema older than it needs.
    /// </summary>
    private sealed class StoreInitializer(IStoreMigrator migrator, IOptions<StorageOptions> options) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            if (options.Value.MigrateOnStartup)
            {
                await migrator.MigrateAsync(cancellationToken);
                return;
            }

            var schema = await migrator.GetSchemaVersionAsync(cancellationToken);
            if (!schema.IsCurrent)
            {
                throw new StoreSchemaException(
                    $"The store's schema is at version {schema.Current}; this server needs version {schema.Required} ({migrator.Location}). " +
                    "Run `Pit.Server migrate` with the store's settings (as the owner role on PostgreSQL) first, or set Pit:Storage:MigrateOnStartup=true.");
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class StoreHealthCheck(IStoreHealth store) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            StoreProbe.RunAsync(async ct =>
            {
                await store.CheckHealthAsync(ct);
                return HealthCheckResult.Healthy();
            }, "The store cannot be reached.", cancellationToken);
    }
}
