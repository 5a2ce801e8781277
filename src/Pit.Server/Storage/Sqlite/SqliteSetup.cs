using Microsoft.Extensions.Options;

namespace Pit.Server.Storage.Sqlite;

/// <summary>Everything the SQLite provider brings, registered explicitly.</summary>
internal static class SqliteSetup
{
    /// <summary>
    /// The embedded engine behind every store interface. It brings no DPoP replay cache: one process per file, so
    /// Auth's per-process default is the right one.
    /// </summary>
    public static IServiceCollection AddSqliteStorage(this IServiceCollection services, IHostEnvironment environment)
    {
        services.AddStoreEngine(sp => new SqlitePitStore(
            ConnectionString(sp.GetRequiredService<IOptions<StorageOptions>>().Value, environment),
            sp.GetRequiredService<TimeProvider>()));

        // One process per file: the waiters of this process are all the waiters there are.
        services.AddSingleton<FeedChangeHub>();
        services.AddSingleton<IFeedChangeNotifier, InProcessFeedChangeNotifier>();
        return services;
    }

    /// <summary>The configured connection string, else <c>data/pit.db</c> under the content root.</summary>
    public static string ConnectionString(StorageOptions options, IHostEnvironment environment) =>
        options.ConnectionString ?? $"Data Source={Path.Combine(environment.ContentRootPath, "data", "pit.db")}";
}
