using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>The PIT server as a separate operating-system process, so tests can kill it (SIGKILL) mid-work.</summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    /// <summary>Starts the built server with its SQLite file in <paramref name="dataDirectory"/> and waits until it is ready.</summary>
    public static async Task<ServerProcess> StartAsync(string dataDirectory, IDictionary<string, string?>? settings = null, int? port = null)
    {
        port ??= FreePort();
        var serverDll = typeof(PitApp).Assembly.Location;
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(serverDll);
        info.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        info.ArgumentList.Add("--environment=Development");
        info.ArgumentList.Add($"--Pit:Storage:ConnectionString=Data Source={Path.Combine(dataDirectory, "pit.db")}");
        info.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new ServerProcess(process, new Uri($"http://127.0.0.1:{port}/"));
        using var probe = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 300; i++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The server process exited with code {process.ExitCode}.");
            }

            try
            {
                if ((await probe.GetAsync("health/ready")).StatusCode == HttpStatusCode.OK)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        await server.DisposeAsync();
        throw new TimeoutException("The server process did not become ready.");
    }

    /// <summary>An HTTP client for this process.</summary>
    public HttpClient CreateClient() => new() { BaseAddress = BaseAddress };

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
