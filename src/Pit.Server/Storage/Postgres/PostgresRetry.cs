using Npgsql;

namespace Pit.Server.Storage.Postgres;

/// <summary>
/// How the PostgreSQL engine meets a transient failure of work that is safe to repeat: most often a pooled connection
/// the server dropped in a restart or fail-over, so it clears the pool and tries once more on a fresh connection. A
/// recovered database then does not cost one failed request per stale pooled connection. Anything longer is the
/// caller's retry loop (<see cref="RetryBackoff"/>).
/// </summary>
internal static class PostgresRetry
{
    /// <summary>Runs <paramref name="operation"/>; after a transient failure (and unless cancelled) clears the pool and runs it once more.</summary>
    public static async Task<T> OnceMoreOnFreshConnectionAsync<T>(
        this NpgsqlDataSource dataSource, Func<CancellationToken, Task<T>> operation, CancellationToken cancellationToken)
    {
        try
        {
            return await operation(cancellationToken);
        }
        catch (NpgsqlException ex) when (ex.IsTransient && !cancellationToken.IsCancellationRequested)
        {
            dataSource.Clear();
            return await operation(cancellationToken);
        }
    }
}
