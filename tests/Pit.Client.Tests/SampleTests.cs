using Pit.Client.Tests.Infrastructure;
using Pit.Sample;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests;

/// <summary>examples/Pit.Sample, the project integrators copy, against the real server and its HelseID stand-in.</summary>
[Collection(EndToEndCollection.Name)]
public sealed class SampleTests
{
    [Fact]
    public async Task The_sample_gets_a_token_submits_a_patient_and_sees_it_in_the_followed_feed()
    {
        await using var server = await TestServer.StartAsync();
        var options = await SampleIntegration.OptionsAsync(server.BaseAddress, RealPit.Authority(server), RealPit.DevClientId, RealPit.DevKeyFile(), CancellationToken.None);
        var log = new StringWriter();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));

        var id = await SampleIntegration.RunAsync(options, log, timeout.Token);

        Assert.Contains("1. Access token with scopes", log.ToString(), StringComparison.Ordinal);
        Assert.Contains($"3. Processed into Patient/{id}", log.ToString(), StringComparison.Ordinal);
        Assert.Contains($"4. Feed: Patient/{id} version 1", log.ToString(), StringComparison.Ordinal);
        using var client = PitClient.Create(await RealPit.ClientOptions(server));
        var stored = await client.ReadPatientAsync(id);
        Assert.Equal("Eksempel", stored.Name[0].Family);
    }
}
