using System.Net;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Pit.Client.Tests.Infrastructure;
using Pit.Server.Tests.Infrastructure;
using Task = System.Threading.Tasks.Task;

namespace Pit.Client.Tests;

/// <summary>
/// What a C# integrator meets with a stock Firely SDK <see cref="FhirClient"/>, authenticated by Pit.Client's
/// <see cref="DpopHandler"/> (HelseID token from the server's stand-in, a DPoP proof on every request), against the real
/// server: exactly the README's "Using the Firely SDK" example.
/// </summary>
public sealed class FirelyFhirClientTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private HttpClient _tokenHttp = null!;
    private DpopHandler _dpop = null!;

    public async Task InitializeAsync()
    {
        _server = await TestServer.StartAsync();
        var options = await RealPit.ClientOptions(_server);
        _tokenHttp = new HttpClient();
        _dpop = new DpopHandler(new HelseIdTokenClient(_tokenHttp, options.HelseId!)) { InnerHandler = new SocketsHttpHandler() };
    }

    public async Task DisposeAsync()
    {
        _dpop.Dispose();
        _tokenHttp.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public async Task CreateAsync_throws_FhirOperationException_with_status_Accepted_and_the_status_URL_in_LastResult_Location()
    {
        using var fhir = Firely(new FhirClientSettings { PreferredFormat = ResourceFormat.Json });

        var thrown = await Assert.ThrowsAsync<FhirOperationException>(() => fhir.CreateAsync(NewPatient("Hansen")));

        Assert.Equal(HttpStatusCode.Accepted, thrown.Status);
        Assert.Equal("202", fhir.LastResult!.Status);
        var status = new Uri(fhir.LastResult.Location!);
        Assert.StartsWith(new Uri(_server.BaseAddress, "v1/submissions/").AbsoluteUri, status.AbsoluteUri, StringComparison.Ordinal);
        using var pit = PitClient.Create(await RealPit.ClientOptions(_server));
        Assert.Equal(SubmissionState.Completed, (await pit.WaitForSubmissionAsync(status, TimeSpan.FromMilliseconds(50))).State);
    }

    [Fact]
    public async Task The_default_client_asks_for_XML_and_gets_406_with_an_OperationOutcome()
    {
        using var fhir = Firely(new FhirClientSettings());

        var thrown = await Assert.ThrowsAsync<FhirOperationException>(() => fhir.SearchAsync<Patient>());

        Assert.Equal(HttpStatusCode.NotAcceptable, thrown.Status);
        Assert.NotNull(thrown.Outcome);
    }

    [Fact]
    public async Task SearchAsync_and_ContinueAsync_follow_the_next_links_over_every_Patient_once_in_order()
    {
        using var fhir = Firely(new FhirClientSettings { PreferredFormat = ResourceFormat.Json });
        using var pit = PitClient.Create(await RealPit.ClientOptions(_server));
        var submitted = new List<string>();
        for (var i = 0; i < 7; i++)
        {
            var status = await pit.SubmitPatientAsync(NewPatient($"Family{i}"));
            submitted.Add((await pit.WaitForSubmissionAsync(status, TimeSpan.FromMilliseconds(50))).PatientId!);
        }

        var seen = new List<Patient>();
        var page = await fhir.SearchAsync<Patient>(pageSize: 3);
        while (page is not null)
        {
            seen.AddRange(page.Entry.Select(e => e.Resource).OfType<Patient>());
            page = await fhir.ContinueAsync(page);
        }

        Assert.Equal(submitted, seen.Select(p => p.Id));
        Assert.All(seen.Zip(seen.Skip(1)), pair => Assert.True(pair.First.Meta!.LastUpdated < pair.Second.Meta!.LastUpdated));

        // A poll with nothing new: an empty searchset, and no next page.
        var none = await fhir.SearchAsync<Patient>(new SearchParams().Add("_lastUpdated", "gt2999-01-01T00:00Z"));
        Assert.NotNull(none);
        Assert.Empty(none.Entry);
        Assert.Null(await fhir.ContinueAsync(none));
    }

    private FhirClient Firely(FhirClientSettings settings) => new(new Uri(_server.BaseAddress, "v1/"), settings, _dpop);

    private static Patient NewPatient(string family) => new()
    {
        Identifier = [new Identifier(TestPatients.FnrSystem, TestPatients.NewFnr())],
        Name = [new HumanName { Family = family, Given = ["Kari"] }],
        Gender = AdministrativeGender.Female,
    };
}
