using System.Net;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests;

public sealed class FailureTests
{
    [Fact]
    public async Task An_unexpected_failure_is_a_500_outcome_with_a_correlation_id_and_no_stack_trace()
    {
        await using var server = await TestServer.StartAsync(configure: b => b.Services.Decorate(store => new FailingStore(store) { FailReads = true }));
        using var client = server.CreateClient();

        var body = await client.GetJsonAsync("v1/Patient/abc", HttpStatusCode.InternalServerError);

        var text = PitApi.AssertOutcome(body, "exception");
        Assert.Matches("Correlation id: [0-9a-f]{32}", text);
        Assert.DoesNotContain("simulated", body.ToJsonString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(" at ", body.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_the_store_cannot_take_a_submission_the_answer_is_503_with_retry_after_never_202()
    {
        await using var server = await TestServer.StartAsync(configure: b => b.Services.Decorate(store => new FailingStore(store) { FailWrites = true }));
        using var client = server.CreateClient();

        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(TestPatients.NewFnr())));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("5", response.Headers.GetValues("Retry-After").Single());
        PitApi.AssertOutcome(System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!, "transient");
    }

    [Fact]
    public async Task Links_use_the_configured_public_base_url()
    {
        // The client talks to the public name (as behind a proxy) while the connection goes to the loopback port,
        // so DPoP proofs carry the public URL the server must check them against.
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:PublicBaseUrl"] = "http://pit.example.org/" });
        using var client = server.CreateClient(connectTo: server.BaseAddress, baseAddress: new Uri("http://pit.example.org/"));
        var statusUrl = await client.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        Assert.StartsWith("http://pit.example.org/v1/submissions/", statusUrl.ToString());
        var bundle = await client.GetJsonAsync("v1/Patient", HttpStatusCode.OK);
        Assert.Equal("http://pit.example.org/v1/Patient?_count=20&_sort=_lastUpdated", bundle.Link("self"));
    }

    /// <summary>The real store with failures switched on, for the paths that must survive a store failure.</summary>
    private sealed class FailingStore(IPitStore inner) : IPitStore
    {
        public bool FailReads { get; init; }

        public bool FailWrites { get; init; }

        public Task InitializeAsync(CancellationToken cancellationToken) => inner.InitializeAsync(cancellationToken);

        public Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken) =>
            FailWrites ? throw new IOException("simulated disk failure") : inner.AddSubmissionsAsync(batch, cancellationToken);

        public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) => inner.GetSubmissionAsync(id, cancellationToken);

        public Task<int> ApplyPendingAsync(int maxCount, CancellationToken cancellationToken) => inner.ApplyPendingAsync(maxCount, cancellationToken);

        public Task<PatientRecord?> GetPatientAsync(string id, CancellationToken cancellationToken) =>
            FailReads ? throw new InvalidOperationException("simulated bug") : inner.GetPatientAsync(id, cancellationToken);

        public Task<IReadOnlyList<PatientRecord>> SearchAsync(PatientPageQuery query, CancellationToken cancellationToken) => inner.SearchAsync(query, cancellationToken);

        public Task<byte[]> GetOrCreateSecretAsync(string name, Func<byte[]> create, CancellationToken cancellationToken) =>
            inner.GetOrCreateSecretAsync(name, create, cancellationToken);

        public Task AppendAuditAsync(IReadOnlyList<AuditEntry> entries, CancellationToken cancellationToken) => inner.AppendAuditAsync(entries, cancellationToken);

        public Task<IReadOnlyList<AuditEntry>> ReadAuditAsync(string? organisation, int limit, CancellationToken cancellationToken) =>
            inner.ReadAuditAsync(organisation, limit, cancellationToken);

        public Task CheckHealthAsync(CancellationToken cancellationToken) => inner.CheckHealthAsync(cancellationToken);
    }
}

internal static class ServiceCollectionDecoration
{
    /// <summary>Wraps the registered <see cref="IPitStore"/> in a decorator.</summary>
    public static void Decorate(this IServiceCollection services, Func<IPitStore, IPitStore> decorate)
    {
        var original = services.Last(d => d.ServiceType == typeof(IPitStore));
        services.Replace(ServiceDescriptor.Singleton(sp => decorate((IPitStore)original.ImplementationFactory!(sp))));
    }
}
