using System.Net;
using System.Text.Json.Nodes;
using Pit.Server.Audit;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Audit;

/// <summary>Audit entries ride out a database outage in the bounded buffer and are written after recovery.</summary>
public sealed class AuditOutageTests(PostgresServer database) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Audit_entries_of_a_postgres_outage_wait_readiness_reports_the_backlog_and_all_are_written_after_restart()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await database.CreateDatabaseAsync(),
            ["Pit:Audit:ReadinessBacklog"] = "3",
        });
        var audit = server.Services.GetRequiredService<AuditTrail>();
        using var client = server.CreateClient();
        using var probe = server.CreateAnonymousClient();
        await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        await WaitUntilAsync(() => audit.Backlog == 0);

        var marker = Guid.NewGuid().ToString("N");
        await database.StopAsync(immediate: true);
        try
        {
            // Requests refused during the outage (the DPoP replay cache lives in PostgreSQL too) are not audited; the
            // entries of requests answered just before it, still waiting for their batch, are.
            for (var i = 0; i < 5; i++)
            {
                audit.Record(new AuditEntry(i, "read", marker, TestServer.DefaultOrganisation, null, null, null, 200, "ok"));
            }

            await WaitUntilAsync(() => audit.WritesFailing && audit.Backlog >= 5);
            using var ready = await probe.GetAsync("health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            var check = JsonNode.Parse(await ready.Content.ReadAsStringAsync())!["checks"]!["audit"]!;
            Assert.Equal("Unhealthy", (string)check["status"]!);
            Assert.True((int)check["data"]!["backlog"]! >= 5);
            Assert.True((bool)check["data"]!["writesFailing"]!);
        }
        finally
        {
            await database.StartAsync();
        }

        await WaitUntilAsync(() => audit.Backlog == 0 && !audit.WritesFailing);
        var written = (await server.Services.GetRequiredService<IAuditStore>().ReadAuditAsync(null, 100, CancellationToken.None))
            .Where(e => e.ClientId == marker).Select(e => e.At).Order();
        Assert.Equal([0L, 1L, 2L, 3L, 4L], written);
        Assert.Equal(0, audit.Dropped);
        using var recovered = await probe.GetAsync("health/ready");
        Assert.Equal(HttpStatusCode.OK, recovered.StatusCode);
        Assert.Equal("Healthy", (string)JsonNode.Parse(await recovered.Content.ReadAsStringAsync())!["checks"]!["audit"]!["status"]!);
    }

    [Fact]
    public async Task While_audit_writes_fail_readiness_is_degraded_then_unhealthy_above_the_backlog_limit_and_nothing_is_lost()
    {
        var failing = new SwitchableAuditStore();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Audit:ReadinessBacklog"] = "10" },
            configure: b => b.Services.DecorateStore<IAuditStore>(inner => failing.Wrap(inner)));
        var audit = server.Services.GetRequiredService<AuditTrail>();
        using var probe = server.CreateAnonymousClient();
        var marker = Guid.NewGuid().ToString("N");
        AuditEntry Entry(int i) => new(i, "test", marker, TestServer.DefaultOrganisation, null, null, null, 200, $"entry {i}");

        failing.Failing = true;
        for (var i = 0; i < 5; i++)
        {
            audit.Record(Entry(i));
        }

        await WaitUntilAsync(() => audit.WritesFailing);
        Assert.Equal((HttpStatusCode.OK, "Degraded"), await AuditStatusAsync(probe));
        for (var i = 5; i < 20; i++)
        {
            audit.Record(Entry(i));
        }

        Assert.Equal((HttpStatusCode.ServiceUnavailable, "Unhealthy"), await AuditStatusAsync(probe));

        failing.Failing = false;
        await WaitUntilAsync(() => audit.Backlog == 0 && !audit.WritesFailing);
        var written = (await server.Services.GetRequiredService<IAuditStore>().ReadAuditAsync(null, 100, CancellationToken.None))
            .Where(e => e.ClientId == marker).Select(e => e.At).Order();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (long)i), written);
        Assert.Equal(0, audit.Dropped);
        Assert.Equal((HttpStatusCode.OK, "Healthy"), await AuditStatusAsync(probe));
    }

    private static async Task<(HttpStatusCode, string)> AuditStatusAsync(HttpClient probe)
    {
        using var response = await probe.GetAsync("health/ready");
        return (response.StatusCode, (string)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["checks"]!["audit"]!["status"]!);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting for the audit trail.");
            await Task.Delay(20);
        }
    }

    /// <summary>The real audit store, whose writes fail while <see cref="Failing"/> is set (a database outage).</summary>
    private sealed class SwitchableAuditStore
    {
        public volatile bool Failing;

        public IAuditStore Wrap(IAuditStore inner) => new Decorator(this, inner);

        private sealed class Decorator(SwitchableAuditStore owner, IAuditStore inner) : IAuditStore
        {
            public Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken) =>
                owner.Failing ? throw new IOException("simulated outage") : inner.AppendAuditAsync(entries, cancellationToken);

            public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
                inner.ReadAuditAsync(organisation, limit, cancellationToken);
        }
    }
}
