using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Pit.Server;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>
/// The real PIT server on Kestrel over loopback, with its own SQLite file in a temp folder.
/// Extra configuration is passed as command-line style key/value pairs.
/// </summary>
public sealed class TestServer : IAsyncDisposable
{
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

    public static async Task<TestServer> StartAsync(
        IDictionary<string, string?>? settings = null, string? dataDirectory = null, Action<WebApplicationBuilder>? configure = null)
    {
        dataDirectory ??= Directory.CreateTempSubdirectory("pit-test-").FullName;
        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            "--environment=Development",
            $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(dataDirectory, "pit.db")}",
            "--Logging:LogLevel:Default=Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            args.Add($"--{key}={value}");
        }

        var app = PitApp.Create([.. args], configure);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestServer(app, dataDirectory, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>An HTTP client for this server.</summary>
    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress };

    /// <summary>An HTTP client that sends no credentials.</summary>
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
