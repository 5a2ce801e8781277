using Microsoft.Data.Sqlite;
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

        services.AddHostedService<SqliteCheckpointer>();

        // One process per file: the waiters of this process are all the waiters there are.
        services.AddSingleton<FeedChangeHub>();
        services.AddSingleton<IFeedChangeNotifier, InProcessFeedChangeNotifier>();
        return services;
    }

    /// <summary>
    /// The configured connection string, else <c>data/pit.db</c>; a relative <c>Data Source</c> is resolved against
    /// the content root (the working directory, or <c>--contentRoot</c>; <c>dotnet run --project src/Pit.Server</c>
    /// runs in <c>src/Pit.Server</c>), so the server and the commands beside it resolve one setting to one file.
    /// </summary>
    public static string ConnectionString(StorageOptions options, IHostEnvironment environment)
    {
        var builder = new SqliteConnectionStringBuilder(options.ConnectionString ?? "Data Source=data/pit.db");
        if (builder.DataSource is { Length: > 0 } file && !file.StartsWith(':') && !file.StartsWith("file:", StringComparison.OrdinalIgnoreCase) && !Path.IsPathRooted(file))
        {
            builder.DataSource = Path.GetFullPath(Path.Combine(environment.ContentRootPath, file));
        }

        return builder.ToString();
    }
}
