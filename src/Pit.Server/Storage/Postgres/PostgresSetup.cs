using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Npgsql;
using Pit.Server.Auth;

namespace Pit.Server.Storage.Postgres;

/// <summary>Everything the PostgreSQL provider brings, registered explicitly.</summary>
internal static class PostgresSetup
{
    /// <summary>
    /// The connection pool, the engine behind every store interface, its options, and the DPoP replay cache shared
    /// by all instances with its sweeper, and the feed signal across instances (<see cref="PostgresFeedNotifier"/>). The replay cache replaces whatever is registered (Auth only adds its
    /// per-process default when none is), so the outcome does not depend on which slice registers first.
    /// </summary>
    public static IServiceCollection AddPostgresStorage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PostgresStoreOptions>().Bind(configuration.GetSection("Pit:Storage")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PostgresStoreOptions>, PostgresStoreOptionsValidator>();

        // One pool for the server, disposed by the container at shutdown.
        services.AddSingleton(sp => PostgresPitStore.CreateDataSource(sp.GetRequiredService<IOptions<StorageOptions>>().Value.ConnectionString!));
        // Reads (GET pages, reads by id) through a second pool when Pit:Storage:ReadConnectionString names a standby.
        services.AddSingleton(sp => new PostgresReadSource(sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<IOptions<PostgresStoreOptions>>().Value));
        if (!string.IsNullOrWhiteSpace(configuration["Pit:Storage:ReadConnectionString"]))
        {
            services.AddHealthChecks().AddCheck<StandbyReadsHealthCheck>("store-reads", tags: ["ready"]);
        }

        services.AddStoreEngine(sp => new PostgresPitStore(
            sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<PostgresStoreOptions>>().Value, sp.GetRequiredService<ILogger<PostgresPitStore>>(),
            readDataSource: sp.GetRequiredService<PostgresReadSource>().DataSource));

        // Feed signals across instances: NOTIFY after each applied batch, one LISTEN connection per instance;
        // waiters that read from a standby are woken once it has replayed the change (one poller per instance).
        services.AddSingleton<FeedChangeHub>();
        services.AddSingleton<StandbyReplayGate>();
        services.AddHostedService(sp => sp.GetRequiredService<StandbyReplayGate>());
        services.AddSingleton<IFeedChangeNotifier, PostgresFeedNotifier>();
        services.AddSingleton<PostgresFeedListener>();
        services.AddHostedService(sp => sp.GetRequiredService<PostgresFeedListener>());

        // Every processing instance competes to be the one sequencer that stamps applied versions.
        services.AddSingleton<PostgresSequencer>();
        services.AddHostedService(sp => sp.GetRequiredService<PostgresSequencer>());

        services.AddSingleton<PostgresDpopReplayCache>();
        services.Replace(ServiceDescriptor.Singleton<IDpopReplayCache>(sp => sp.GetRequiredService<PostgresDpopReplayCache>()));
        services.AddHostedService<PostgresDpopReplayCleanup>();
        return services;
    }
}
