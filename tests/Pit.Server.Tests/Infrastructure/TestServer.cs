using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Pit.HelseIdStandIn;
using Pit.Server;
using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// The real PIT server on Kestrel over loopback, with its own SQLite file in a temp folder.
/// Extra configuration is passed as command-line style key/value pairs. The local HelseID stand-in is enabled by
/// default (its issuer is the server's own loopback address plus <c>/helseid-standin</c>), so authenticated clients
/// carry real stand-in-signed access tokens and real DPoP proofs; no test bypasses authentication.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
    /// <summary>A valid organisation number (mod-11), the tenant of <see cref="CreateClient"/> by default.</summary>
    public const string DefaultOrganisation = "974762501";

    /// <summary>A second valid organisation number, for isolation tests.</summary>
    public const string OtherOrganisation = "123456785";

    private readonly WebApplication _app;

    private TestServer(WebApplication app, string dataDirectory, Uri baseAddress)
    {
        _app = app;
        DataDirectory = dataDirectory;
        BaseAddress = baseAddress;
    }

    /// <summary>http://127.0.0.1:port/</summary>
    public Uri BaseAddress { get; }

    /// <summary>Folder holding this server's files; deleted on dispose.</summary>
    public string DataDirectory { get; }

    /// <summary>The running application's services.</summary>
    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Starts a server; <paramref name="settings"/> override configuration (e.g. <c>Pit:Auth:DPoP:RequireNonce</c>),
    /// <paramref name="configure"/> adjusts the builder (extra services).
    /// </summary>
    public static async Task<TestServer> StartAsync(IDictionary<string, string?>? settings = null, string? dataDirectory = null, Action<WebApplicationBuilder>? configure = null)
    {
        var ownsDirectory = dataDirectory is null;
        dataDirectory ??= Directory.CreateTempSubdirectory("pit-test-").FullName;
        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            "--environment=Development",
            $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(dataDirectory, "pit.db")}",
            "--Logging:LogLevel:Default=Warning",
            "--Pit:Auth:StandIn:Enabled=true",
            // Overrides appsettings.Development.json (fixed localhost:5080): the stand-in's issuer becomes this
            // server's own loopback address, so its token endpoint URL is the one tests actually reach.
            "--Pit:Auth:Authority=",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            args.Add($"--{key}={value}");
        }

        WebApplication app;
        try
        {
            app = PitApp.Create([.. args], configure);
            await app.StartAsync();
        }
        catch when (ownsDirectory)
        {
            // A server that refuses to start (the tests of start-up guards) leaves no folder behind.
            Directory.Delete(dataDirectory, recursive: true);
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestServer(app, dataDirectory, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>Mints access tokens signed by this server's in-process HelseID stand-in (issuer and audience included).</summary>
    public AccessTokenMinter TokenMinter => AccessTokenMinter.ForStandIn(Services.GetRequiredService<StandInIssuer>());

    /// <summary>
    /// A DPoP-authenticated client for this server: a fresh EC P-256 DPoP key, a stand-in access token bound to it
    /// (600 s) for <paramref name="organisation"/> with <paramref name="scopes"/> (default read and write), and a new
    /// proof on every request.
    /// </summary>
    /// <remarks>
    /// <paramref name="baseAddress"/> and <paramref name="connectTo"/> let a test address the server by a public name
    /// while connecting to its loopback port, as a client behind a proxy would.
    /// </remarks>
    public HttpClient CreateClient(
        string organisation = DefaultOrganisation, string[]? scopes = null, string? orgnrChild = null, Uri? baseAddress = null, Uri? connectTo = null)
    {
        var key = DpopKey.CreateEcP256();
        var token = TokenMinter.Mint(new AccessTokenSpec
        {
            Jkt = key.Thumbprint,
            OrgnrParent = organisation,
            OrgnrChild = orgnrChild,
            Scopes = scopes ?? [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope],
        });
        var sockets = new SocketsHttpHandler();
        if (connectTo is not null)
        {
            sockets.ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(connectTo.Host, connectTo.Port, cancellationToken);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            };
        }

        return new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = sockets, DisposesKey = true }) { BaseAddress = baseAddress ?? BaseAddress };
    }

    /// <summary>An HTTP client for this server without credentials.</summary>
    public HttpClient CreateAnonymousClient() => new() { BaseAddress = BaseAddress };

    /// <summary>Stops the server but keeps its files, for restart tests.</summary>
    public async Task StopAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        catch (ObjectDisposedException)
        {
        }

        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
