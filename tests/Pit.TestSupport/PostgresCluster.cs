using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Pit.TestSupport;

/// <summary>
/// A throw-away PostgreSQL cluster from the machine's binaries (/usr/lib/postgresql/*/bin): <c>initdb</c> into a temp
/// folder, <c>pg_ctl</c> on a free loopback port with its unix socket in that folder, fsync on. Usable as an xUnit
/// fixture (the test project's <c>PostgresServer</c> adds xUnit's <c>IAsyncLifetime</c>) and by the load harness;
/// <see cref="StopAsync"/> and <see cref="StartAsync"/> stop and start the same cluster (outage tests);
/// dispose stops it and deletes the folder. When run as root (CI), the cluster runs as the <c>postgres</c>
/// user, because initdb and postgres refuse to run as root.
/// </summary>
public class PostgresCluster : IAsyncDisposable
{
    private const string Superuser = "pit";
    private readonly string _bin;
    private readonly string _folder;
    private readonly string _dataDirectory;
    private readonly string? _runAs;
    private int _databases;

    /// <summary>Picks the binaries, a folder and a free port; <see cref="InitializeAsync"/> creates and starts the cluster.</summary>
    public PostgresCluster()
    {
        _bin = FindBinaries();
        _runAs = IsRoot() ? "postgres" : null;
        // As root, under /tmp: the postgres user must be able to reach the folder, and TMPDIR may be private to root.
        _folder = _runAs is null
            ? Directory.CreateTempSubdirectory("pit-pg-").FullName
            : Directory.CreateDirectory(Path.Combine("/tmp", $"pit-pg-{Guid.NewGuid():N}")).FullName;
        _dataDirectory = Path.Combine(_folder, "data");
        Port = FreePort();
    }

    /// <summary>The folder of the PostgreSQL binaries in use (<c>pg_dump</c>, <c>pg_restore</c>, ...).</summary>
    public string Binaries => _bin;

    /// <summary>The loopback TCP port the cluster listens on.</summary>
    public int Port { get; }

    /// <summary>The <c>shared_buffers</c> setting written at <see cref="InitializeAsync"/>; small for tests by default.</summary>
    public string SharedBuffers { get; init; } = "32MB";

    /// <summary>The postmaster's process id while the cluster runs (first line of <c>postmaster.pid</c>), else null.</summary>
    public int? PostmasterProcessId =>
        File.Exists(Path.Combine(_dataDirectory, "postmaster.pid")) &&
        int.TryParse(File.ReadLines(Path.Combine(_dataDirectory, "postmaster.pid")).FirstOrDefault(), out var pid) ? pid : null;

    /// <summary>Whether the cluster is running (as far as this object knows).</summary>
    public bool IsRunning { get; private set; }

    /// <summary>A connection string to the database <paramref name="database"/> as the superuser.</summary>
    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = Superuser,
        Database = database,
        Timeout = 5,
        CommandTimeout = 30,
    }.ToString();

    /// <summary>More <c>postgresql.conf</c> lines written at <see cref="InitializeAsync"/> (e.g. for diagnostics).</summary>
    public string ExtraSettings { get; init; } = "";

    /// <summary>Runs initdb (fsync on in the server settings) and starts the cluster.</summary>
    public async Task InitializeAsync()
    {
        if (_runAs is not null)
        {
            await RunAsync("chown", ["-R", $"{_runAs}:{_runAs}", _folder], asRoot: true);
        }

        await RunAsync(Path.Combine(_bin, "initdb"),
            ["-D", _dataDirectory, "-U", Superuser, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
        var settings = $"""

            # pit test cluster
            listen_addresses = '127.0.0.1'
            port = {Port}
            unix_socket_directories = '{_folder}'
            fsync = on
            synchronous_commit = on
            max_connections = 100
            shared_buffers = {SharedBuffers}
            log_min_messages = warning
            {ExtraSettings}
            """;
        var conf = Path.Combine(_dataDirectory, "postgresql.conf");
        await File.AppendAllTextAsync(conf, settings);
        await StartAsync();
    }

    /// <summary>
    /// A streaming standby of this (running) cluster: <c>pg_basebackup -R</c> into a temp folder of its own, started on
    /// a free port as a hot standby (with <c>hot_standby_feedback</c>, so the primary's vacuum does not cancel its
    /// reads). The primary's defaults (<c>wal_level = replica</c>, 10 WAL senders, replication allowed from loopback)
    /// are enough. Dispose it before this cluster.
    /// </summary>
    public async Task<PostgresCluster> StartStandbyAsync()
    {
        var standby = new PostgresCluster { SharedBuffers = SharedBuffers };
        if (standby._runAs is not null)
        {
            await standby.RunAsync("chown", ["-R", $"{standby._runAs}:{standby._runAs}", standby._folder], asRoot: true);
        }

        await standby.RunAsync(Path.Combine(_bin, "pg_basebackup"),
            ["-h", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", Superuser,
             "-D", standby._dataDirectory, "-R", "-X", "stream", "-c", "fast", "--no-sync"]);
        // Later lines win: the copied postgresql.conf names the primary's port and socket folder.
        await File.AppendAllTextAsync(Path.Combine(standby._dataDirectory, "postgresql.conf"), $"""

            # pit test standby
            port = {standby.Port}
            unix_socket_directories = '{standby._folder}'
            hot_standby = on
            hot_standby_feedback = on
            """);
        await standby.StartAsync();
        return standby;
    }

    /// <summary>This (standby) cluster's <c>pg_last_wal_replay_lsn()</c>, as text (null on a primary).</summary>
    public async Task<string?> ReplayPositionAsync() => await ScalarTextAsync("SELECT pg_last_wal_replay_lsn()::text;");

    /// <summary>
    /// Waits until this standby has replayed everything <paramref name="primary"/> had written when called (fails
    /// after <paramref name="timeout"/>, default 60 s). Replay must not be paused.
    /// </summary>
    public async Task WaitForReplayOfAsync(PostgresCluster primary, TimeSpan? timeout = null)
    {
        var target = await primary.ScalarTextAsync("SELECT pg_current_wal_lsn()::text;");
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var caughtUp = await ScalarTextAsync($"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn;");
            if (caughtUp == "true")
            {
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The standby on port {Port} did not replay up to {target} in time.");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Pauses (<c>pg_wal_replay_pause()</c>) or resumes (<c>pg_wal_replay_resume()</c>) this standby's replay.</summary>
    public Task SetReplayPausedAsync(bool paused) =>
        ScalarTextAsync(paused ? "SELECT pg_wal_replay_pause()::text;" : "SELECT pg_wal_replay_resume()::text;");

    /// <summary>Runs <paramref name="sql"/> on the <c>postgres</c> database over a fresh connection; its first value as text.</summary>
    public async Task<string?> ScalarTextAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString()) { Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? null : value is bool b ? (b ? "true" : "false") : value.ToString();
    }

    /// <summary>Starts the (stopped) cluster and waits until it accepts connections.</summary>
    public async Task StartAsync()
    {
        await RunAsync(Path.Combine(_bin, "pg_ctl"),
            ["-D", _dataDirectory, "-l", Path.Combine(_folder, "server.log"), "-w", "-t", "60", "start"]);
        IsRunning = true;
    }

    /// <summary>Stops the cluster; <paramref name="immediate"/> is a crash-like stop without a shutdown checkpoint.</summary>
    public async Task StopAsync(bool immediate = false)
    {
        await RunAsync(Path.Combine(_bin, "pg_ctl"),
            ["-D", _dataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "stop"]);
        IsRunning = false;
    }

    /// <summary>Creates a new, empty database of its own for one test and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"test_{Interlocked.Increment(ref _databases)}";
        // Unpooled: a pooled connection may be a dead one from before a Stop/Start.
        await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString()) { Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name};", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    /// <summary>Stops the cluster (immediate) and deletes its folder.</summary>
    public async Task DisposeAsync()
    {
        try
        {
            if (IsRunning)
            {
                await StopAsync(immediate: true);
            }
        }
        finally
        {
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    ValueTask IAsyncDisposable.DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return new ValueTask(DisposeAsync());
    }

    private async Task RunAsync(string program, IReadOnlyList<string> arguments, bool asRoot = false)
    {
        var start = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        if (_runAs is not null && !asRoot)
        {
            start.FileName = "runuser";
            foreach (var a in (string[])["-u", _runAs, "--", program])
            {
                start.ArgumentList.Add(a);
            }
        }
        else
        {
            start.FileName = program;
        }

        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            var log = Path.Combine(_folder, "server.log");
            var serverLog = File.Exists(log) ? await File.ReadAllTextAsync(log) : "";
            throw new InvalidOperationException(
                $"{Path.GetFileName(program)} {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{await stdout}\n{await stderr}\n{serverLog}");
        }
    }

    private static string FindBinaries()
    {
        var versions = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Where(d => File.Exists(Path.Combine(d, "bin", "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(d), out var v) ? v : 0)
                .ToList()
            : [];
        return versions.Count > 0
            ? Path.Combine(versions[0], "bin")
            : throw new InvalidOperationException("No PostgreSQL server binaries in /usr/lib/postgresql/*/bin; run ./scripts/test.sh to install them.");
    }

    private static bool IsRoot() => File.Exists("/proc/self/status")
        && File.ReadLines("/proc/self/status").Any(l => l.StartsWith("Uid:", StringComparison.Ordinal) && l.Split('\t', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(1) == "0");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
