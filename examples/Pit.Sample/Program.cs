// A PIT integration in one file: get a HelseID token (client credentials, private_key_jwt, DPoP), submit a
// Patient, wait until it is processed, and follow the change feed until it shows up.
//
//   dotnet run --project examples/Pit.Sample                     # the local server and its HelseID stand-in
//   dotnet run --project examples/Pit.Sample -- <PIT base URL> <HelseID authority> <client id> <private JWK file>
//
// The local server is `dotnet run --project src/Pit.Server` (http://localhost:5080); the development client's key is
// dev/helseid-standin/dev-client.jwk.json. Against HelseID test use https://helseid-sts.test.nhn.no and your own client.
using Pit.Client;
using Pit.Sample;

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stop.Cancel();
};

var options = args.Length == 4
    ? await SampleIntegration.OptionsAsync(new Uri(args[0]), new Uri(args[1]), args[2], args[3], stop.Token)
    : await SampleIntegration.OptionsAsync(
        new Uri("http://localhost:5080/"), new Uri("http://localhost:5080/helseid-standin"), "pit-dev-client", SampleIntegration.FindDevKey(), stop.Token);
try
{
    await SampleIntegration.RunAsync(options, Console.Out, stop.Token);
    return 0;
}
catch (HelseIdTokenException e)
{
    Console.Error.WriteLine($"No access token: {e.Message}");
    return 1;
}
catch (PitApiException e)
{
    Console.Error.WriteLine($"PIT answered {(int)e.StatusCode}: {string.Join("; ", e.IssueLines)} {e.AuthenticateChallenge}");
    return 1;
}
catch (HttpRequestException e)
{
    Console.Error.WriteLine($"Could not reach PIT: {e.Message}");
    return 1;
}
