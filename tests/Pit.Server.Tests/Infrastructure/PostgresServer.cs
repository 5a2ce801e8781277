using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>A throw-away PostgreSQL cluster (<see cref="PostgresCluster"/>) as an xUnit fixture.</summary>
public sealed class PostgresServer : PostgresCluster, IAsyncLifetime;
