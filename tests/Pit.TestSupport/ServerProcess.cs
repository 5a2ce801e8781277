using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.IdentityModel.Tokens;

namespace Pit.TestSupport;

/// <summary>
/// The PIT server as a separate operating-system process, so tests can kill it (SIGKILL) mid-work. Its in-process
/// HelseID stand-in signs with a key given on the command line, so the test can mint tokens the process accepts.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private static readonly Lazy<RSA> StandInKey = new(() => RSA.Create(2048));

    private readonly Process _process;

    private readonly string _issuer;

    private System.Collections.Concurrent.ConcurrentQueue<string> _output = new();

    private ServerProcess(Process process, Uri baseAddress, string issuer)
    {
        _process = process;
        BaseAddress = baseAddress;
        _issuer = issuer;
    }

    /// <summary>The operating-system process id of the server.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the server process has ended (crashed, or was stopped).</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The last 40 lines the server wrote (stack-trace lines left out), for a report when it died.</summary>
    public IReadOnlyCollection<string> LastOutput => [.. _output];

    /// <summary>The server's own address, http://127.0.0.1:port/.</summary>
    public Uri BaseAddress { get; }

    /// <summary>
    /// Starts <paramref name="serverDll"/> (the built Pit.Server.dll) with its SQLite file in
    /// <paramref name="dataDirectory"/> unless <paramref name="settings"/> choose another store, and waits until it is ready.
    /// </summary>
    /// <remarks>
    /// <paramref name="environment"/> adds environment variables to the process only (runtime knobs such as
    /// <c>DOTNET_GCHeapHardLimit</c>, as a container's memory limit sets it).
    /// </remarks>
    public static async Task<ServerProcess> StartAsync(
        string serverDll, string dataDirectory, IDictionary<string, string?>? settings = null, int? port = null, IDictionary<string, string>? environment = null)
    {
        port ??= FreePort();
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(serverDll);
        info.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        info.ArgumentList.Add("--environment=Development");
        info.ArgumentList.Add($"--Pit:Storage:ConnectionString=Data Source={Path.Combine(dataDirectory, "pit.db")}");
        info.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        info.ArgumentList.Add("--Pit:Auth:StandIn:Enabled=true");
        // Instances that must accept each other's tokens are given one issuer in settings; otherwise each is its own.
        var issuer = settings?.TryGetValue("Pit:Auth:StandIn:Issuer", out var shared) == true && shared is not null ? shared : Issuer(port.Value);
        info.ArgumentList.Add($"--Pit:Auth:Authority={issuer}");
        info.ArgumentList.Add($"--Pit:Auth:StandIn:Issuer={issuer}");
        info.ArgumentList.Add("--Pit:Auth:StandIn:SigningKey:kty=RSA");
        var signing = StandInKey.Value.ExportParameters(includePrivateParameters: true);
        foreach (var (name, value) in new[] { ("n", signing.Modulus), ("e", signing.Exponent), ("d", signing.D), ("p", signing.P), ("q", signing.Q), ("dp", signing.DP), ("dq", signing.DQ), ("qi", signing.InverseQ) })
        {
            info.ArgumentList.Add($"--Pit:Auth:StandIn:SigningKey:{name}={Base64UrlEncoder.Encode(value)}");
        }
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(info)!;
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => Keep(output, e.Data);
        process.ErrorDataReceived += (_, e) => Keep(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new ServerProcess(process, new Uri($"http://127.0.0.1:{port}/"), issuer) { _output = output };
        using var probe = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 300; i++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The server process exited with code {process.ExitCode}: {string.Join('\n', output)}");
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

    /// <summary>A DPoP-authenticated client (read and write) for <paramref name="organisation"/>.</summary>
    public HttpClient CreateClient(string organisation = "974762501")
    {
        var key = DpopKey.CreateEcP256();
        return new HttpClient(new DpopHttpHandler(key, MintAccessToken(key, organisation)) { InnerHandler = new SocketsHttpHandler(), DisposesKey = true })
        {
            BaseAddress = BaseAddress,
        };
    }

    /// <summary>
    /// An access token (read and write) from this process's stand-in, bound to <paramref name="key"/>, for
    /// <paramref name="clientId"/> (the minter's default test client when null).
    /// </summary>
    public string MintAccessToken(DpopKey key, string organisation = "974762501", string? clientId = null) =>
        new AccessTokenMinter(new SigningCredentials(new RsaSecurityKey(StandInKey.Value), SecurityAlgorithms.RsaSha256), _issuer, "nhn:pit")
            .Mint(new AccessTokenSpec
            {
                Jkt = key.Thumbprint,
                OrgnrParent = organisation,
                Scopes = [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope],
                ClientId = clientId ?? new AccessTokenSpec().ClientId,
            });

    private static void Keep(System.Collections.Concurrent.ConcurrentQueue<string> output, string? line)
    {
        if (line is not null && !line.StartsWith("   at ", StringComparison.Ordinal))
        {
            output.Enqueue(line);
            while (output.Count > 40 && output.TryDequeue(out _))
            {
            }
        }
    }

    private static string Issuer(int port) => $"http://127.0.0.1:{port}/helseid-standin";

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>
    /// SIGTERM, as an orchestrator stops a container: waits up to <paramref name="timeout"/> for the process to exit
    /// and returns its exit code and how long it took; throws <see cref="TimeoutException"/> if it is still running.
    /// </summary>
    public async Task<(int ExitCode, TimeSpan Elapsed)> TerminateAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        using (var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) } })!)
        {
            await kill.WaitForExitAsync();
        }

        using var wait = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The server was still running {timeout} after SIGTERM.");
        }

        return (_process.ExitCode, clock.Elapsed);
    }

    /// <summary>Kills the process if it still runs.</summary>
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
