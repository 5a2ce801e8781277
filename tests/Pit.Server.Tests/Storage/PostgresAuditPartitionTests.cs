using Microsoft.Extensions.Time.Testing;
using Npgsql;
using Pit.Server.Storage.Postgres;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>PostgreSQL's audit log partitioned by day: the upgrade keeps old rows, partitions are made ahead.</summary>
public sealed class PostgresAuditPartitionTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private static readonly DateTimeOffset Now = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Upgrading_to_the_partitioned_audit_log_keeps_every_existing_entry_and_its_id()
    {
        var connectionString = await server.CreateDatabaseAsync();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync();
            await ExecuteAsync(connection, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());");
            foreach (var (version, name, sql) in PostgresSchema.Migrations.Where(m => m.Version <= 3))
            {
                await ExecuteAsync(connection, sql);
                await ExecuteAsync(connection, $"INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}');");
            }

            for (var day = 0; day < 3; day++)
            {
                var at = FeedTime.FromDateTimeOffset(Now.AddDays(-day));
                await ExecuteAsync(connection, $"""
                    INSERT INTO audit_log (at, action, client_id, organisation, status, outcome)
                    VALUES ({at}, 'read', 'old-client', '999999999', 200, 'ok'), ({at + 1}, 'search', 'old-client', '888888888', 200, 'ok');
                    """);
            }
        }

        await using var db = new PostgresTestDatabase(connectionString);
        var store = await db.OpenStoreAsync(new FakeTimeProvider(Now));

        var kept = await store.Audit.ReadAuditAsync(null, 100, CancellationToken.None);
        Assert.Equal(6, kept.Count);
        Assert.All(kept, e => Assert.Equal("old-client", e.ClientId));
        await using var check = new NpgsqlConnection(connectionString);
        await check.OpenAsync();
        Assert.Equal(0L, await ScalarAsync(check, "SELECT count(*) FROM audit_log_default;"));
        Assert.Equal(3L, await ScalarAsync(check, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_log'::regclass AND inhrelid::regclass::text LIKE 'audit_log_p%';"));
        Assert.Equal([1L, 2L, 3L, 4L, 5L, 6L], await IdsAsync(check));

        await store.Audit.AppendAuditAsync([RetentionContractTests.Entry(Now, "999999999")], CancellationToken.None);
        Assert.Equal(7L, (await IdsAsync(check))[^1]);
    }

    [Fact]
    public async Task Partitions_are_made_for_today_and_two_days_ahead_and_rows_the_default_partition_caught_move_into_them()
    {
        await using var db = await PostgresTestDatabase.CreateAsync(server);
        var time = new FakeTimeProvider(Now);
        var store = await db.OpenStoreAsync(time);
        var early = RetentionContractTests.Entry(Now.AddDays(1), "999999999");
        await store.Audit.AppendAuditAsync([early], CancellationToken.None);
        await using var check = new NpgsqlConnection(db.ConnectionString);
        await check.OpenAsync();
        Assert.Equal(1L, await ScalarAsync(check, "SELECT count(*) FROM audit_log_default;"));

        await RetentionContractTests.Retention(store, time, auditDays: 365, submissionDays: 30).RunOnceAsync(CancellationToken.None);
        await RetentionContractTests.Retention(store, time, auditDays: 365, submissionDays: 30).RunOnceAsync(CancellationToken.None);

        Assert.Equal(0L, await ScalarAsync(check, "SELECT count(*) FROM audit_log_default;"));
        Assert.Equal(1L, await ScalarAsync(check, "SELECT count(*) FROM audit_log_p20261126;"));
        foreach (var name in new[] { "audit_log_p20261125", "audit_log_p20261126", "audit_log_p20261127" })
        {
            Assert.Equal(true, await ScalarAsync(check, $"SELECT to_regclass('{name}') IS NOT NULL;"));
        }

        Assert.Equal([early], await store.Audit.ReadAuditAsync(null, 10, CancellationToken.None));
    }

    private static async Task<List<long>> IdsAsync(NpgsqlConnection connection)
    {
        var ids = new List<long>();
        await using var command = new NpgsqlCommand("SELECT id FROM audit_log ORDER BY id;", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt64(0));
        }

        return ids;
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
