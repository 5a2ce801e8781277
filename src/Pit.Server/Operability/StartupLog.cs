using Microsoft.Extensions.Options;
using Pit.HelseIdStandIn;
using Pit.Server.Fhir;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Operability;

/// <summary>
/// Writes one line once the server listens (event 50): the version, the store engine and its schema version, whether
/// the HelseID stand-in is on, and the public base URL. An operator reading the log of a rollout sees at once which
/// build runs against what; nothing in it is secret (no connection string, no key).
/// </summary>
internal sealed partial class StartupLog(
    IHostApplicationLifetime lifetime, IOptions<StorageOptions> storage, IOptions<StandInOptions> standIn, IOptions<PitOptions> pit,
    ILogger<StartupLog> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        // After every hosted service started (the schema is migrated or checked by then) and Kestrel listens.
        lifetime.ApplicationStarted.Register(() =>
        {
            var engine = storage.Value.Provider;
            var schema = engine == "Postgres" ? PostgresSchema.LatestVersion : SqliteSchema.Version;
            LogStarted(logger, ServerVersion.Value, engine, schema, standIn.Value.Enabled, pit.Value.PublicBaseUrl ?? "(from each request's Host)");
        });
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 50, Level = LogLevel.Information,
        Message = "PIT server {Version} started: store {StoreEngine} schema version {SchemaVersion}, HelseID stand-in {StandInEnabled}, public base URL {PublicBaseUrl}")]
    private static partial void LogStarted(ILogger logger, string version, string storeEngine, int schemaVersion, bool standInEnabled, string publicBaseUrl);
}
