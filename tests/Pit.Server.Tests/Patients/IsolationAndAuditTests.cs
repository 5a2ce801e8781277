using System.Net;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class IsolationAndAuditTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async Task InitializeAsync() => _server = await TestServer.StartAsync(
        new Dictionary<string, string?> { ["Pit:Access:CrossOrganisationReaders:0"] = "889640782" });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Each_organisation_sees_only_its_own_patients_in_search_read_and_status()
    {
        using var a = _server.CreateClient(TestServer.DefaultOrganisation);
        using var b = _server.CreateClient(TestServer.OtherOrganisation);
        var statusUrl = await a.SubmitAsync(TestPatients.Json(TestPatients.NewFnr()));
        var (_, _, location) = await a.WaitProcessedAsync(statusUrl);
        var patient = await a.GetJsonAsync(location!.ToString(), HttpStatusCode.OK);
        Assert.Equal(TestServer.DefaultOrganisation, (string?)patient["meta"]!["tag"]![0]!["code"]);

        Assert.Empty((await b.GetJsonAsync("v1/Patient", HttpStatusCode.OK)).Resources());
        PitApi.AssertOutcome(await b.GetJsonAsync(location.ToString(), HttpStatusCode.NotFound), "not-found");
        PitApi.AssertOutcome(await b.GetJsonAsync(statusUrl.ToString(), HttpStatusCode.NotFound), "not-found");
        Assert.Single((await a.GetJsonAsync("v1/Patient", HttpStatusCode.OK)).Resources());
    }

    [Fact]
    public async Task The_same_identifier_in_two_organisations_makes_two_patients()
    {
        using var a = _server.CreateClient(TestServer.DefaultOrganisation);
        using var b = _server.CreateClient(TestServer.OtherOrganisation);
        var fnr = TestPatients.NewFnr();

        var inA = await a.SubmitAndReadAsync(TestPatients.Json(fnr, family: "A"));
        var inB = await b.SubmitAndReadAsync(TestPatients.Json(fnr, family: "B"));

        Assert.NotEqual((string?)inA["id"], (string?)inB["id"]);
        Assert.Equal("1", (string?)inB["meta"]!["versionId"]);
        Assert.Equal(TestServer.OtherOrganisation, (string?)inB["meta"]!["tag"]![0]!["code"]);
    }

    [Fact]
    public async Task A_cursor_made_for_one_organisation_is_400_for_another()
    {
        using var a = _server.CreateClient(TestServer.DefaultOrganisation);
        using var b = _server.CreateClient(TestServer.OtherOrganisation);
        await a.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        await a.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        var next = (await a.GetJsonAsync("v1/Patient?_count=1", HttpStatusCode.OK)).Link("next")!;

        PitApi.AssertOutcome(await b.GetJsonAsync(next, HttpStatusCode.BadRequest), "invalid");
        await a.GetJsonAsync(next, HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_cross_organisation_reader_sees_every_organisations_patients()
    {
        using var a = _server.CreateClient(TestServer.DefaultOrganisation);
        using var b = _server.CreateClient(TestServer.OtherOrganisation);
        using var reader = _server.CreateClient("889640782", scopes: ["nhn:pit/api.read"]);
        var inA = await a.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));
        var inB = await b.SubmitAndReadAsync(TestPatients.Json(TestPatients.NewFnr()));

        var seen = new List<string>();
        string? page = "v1/Patient?_count=2";
        while (page is not null)
        {
            var bundle = await reader.GetJsonAsync(page, HttpStatusCode.OK);
            seen.AddRange(bundle.Resources().Select(r => (string)r["id"]!));
            page = bundle.Link("next");
        }

        Assert.Contains((string)inA["id"]!, seen);
        Assert.Contains((string)inB["id"]!, seen);
        await reader.GetJsonAsync($"v1/Patient/{inB["id"]}", HttpStatusCode.OK);
    }

    [Fact]
    public async Task Submissions_and_reads_are_audited_with_who_what_and_outcome_but_no_identity_numbers()
    {
        using var a = _server.CreateClient(TestServer.DefaultOrganisation, orgnrChild: "987654325");
        var fnr = TestPatients.NewFnr();
        var patient = await a.SubmitAndReadAsync(TestPatients.Json(fnr));
        await a.GetJsonAsync("v1/Patient", HttpStatusCode.OK);
        await a.PostAsync("v1/Patient", TestPatients.Content("{}"));

        var store = _server.Services.GetRequiredService<IAuditStore>();
        IReadOnlyList<AuditEntry> entries = [];
        for (var i = 0; i < 100 && entries.Count < 4; i++)
        {
            await Task.Delay(20);
            entries = [.. (await store.ReadAuditAsync(TestServer.DefaultOrganisation, 100, CancellationToken.None)).Where(e => e.OrgnrChild == "987654325")];
        }

        Assert.Contains(entries, e => e is { Action: "submit", Status: 202, Outcome: "accepted", SubmissionId: not null });
        Assert.Contains(entries, e => e is { Action: "submit", Status: 400, Outcome: "rejected" });
        Assert.Contains(entries, e => e.Action == "read" && e.PatientIds == (string?)patient["id"]);
        Assert.Contains(entries, e => e.Action == "search" && e.PatientIds!.Contains((string)patient["id"]!, StringComparison.Ordinal));
        Assert.All(entries, e => Assert.False(string.IsNullOrEmpty(e.ClientId)));
        Assert.DoesNotContain(entries, e => $"{e.PatientIds}{e.Outcome}{e.ClientId}".Contains(fnr, StringComparison.Ordinal));
    }
}
