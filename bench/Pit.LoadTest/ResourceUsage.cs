using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Pit.LoadTest;

/// <summary>
/// What the machine spent during a measured run: CPU seconds of this harness (HTTP client, DPoP signing), of the server
/// process and, for a cluster the harness started, of PostgreSQL (postmaster and its children, from /proc); WAL
/// writes and syncs from <c>pg_stat_wal</c>; with diagnostics on, the server's fsync/fdatasync calls counted by
/// <c>perf stat</c> and the group-commit batch sizes (the server's <c>pit.submissions.commit_batch</c> histogram, read
/// once a second by <c>dotnet-counters</c>; install it with <c>dotnet tool install -g dotnet-counters</c>). With a
/// standby the harness started (<paramref name="standbyPostmasterPid"/>), the primary's and the standby's CPU apart.
/// </summary>
internal sealed class ResourceUsage(int serverPid, int? postmasterPid, string? postgresConnectionString, int? standbyPostmasterPid = null)
{
    private (double Client, double Server, double Postgres, double Standby) _cpu;
    private (long Writes, long Syncs)? _wal;
    private long? _patientScans;
    private long[] _machine = [];
    private bool _statements;
    private Process? _perf;
    private Process? _counters;
    private string? _countersFile;

    public async Task StartAsync(int? diagnoseSeconds)
    {
        if (diagnoseSeconds is { } seconds)
        {
            var pid = serverPid.ToString(CultureInfo.InvariantCulture);
            _perf = Start("perf", ["stat", "-x", ",", "-e", "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64", "-p", pid, "--", "sleep", seconds.ToString(CultureInfo.InvariantCulture)]);
            _countersFile = Path.Combine(Path.GetTempPath(), $"pit-counters-{Guid.NewGuid():N}.csv");
            var tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-counters");
            _counters = Start(File.Exists(tool) ? tool : "dotnet-counters",
                ["collect", "-p", pid, "--counters", "Pit.Server", "--format", "csv", "-o", _countersFile, "--refresh-interval", "1",
                    "--duration", TimeSpan.FromSeconds(seconds).ToString("c", CultureInfo.InvariantCulture)]);
        }

        _wal = await WalAsync();
        _patientScans = await PatientScansAsync();
        if (diagnoseSeconds is not null && postmasterPid is not null && postgresConnectionString is not null)
        {
            await ResetStatementsAsync(postgresConnectionString);
            _statements = true;
        }

        _cpu = Cpu();
        _machine = Machine();
    }

    /// <summary>The server process's CPU seconds between start and stop.</summary>
    public double ServerCpuSeconds { get; private set; }

    /// <summary>The (primary) PostgreSQL cluster's CPU seconds between start and stop.</summary>
    public double PostgresCpuSeconds { get; private set; }

    public async Task<string> StopAsync(TimeSpan elapsed)
    {
        var cpu = Cpu();
        ServerCpuSeconds = cpu.Server - _cpu.Server;
        PostgresCpuSeconds = cpu.Postgres - _cpu.Postgres;
        var machine = Machine();
        var wal = await WalAsync();
        var patientScans = await PatientScansAsync();
        var report = string.Create(CultureInfo.InvariantCulture,
            $"CPU seconds in {elapsed.TotalSeconds:F1} s on {Environment.ProcessorCount} cores: harness {cpu.Client - _cpu.Client:F1}, server {ServerCpuSeconds:F1}");
        if (postmasterPid is not null)
        {
            report += string.Create(CultureInfo.InvariantCulture, $", postgres {(standbyPostmasterPid is null ? "" : "primary ")}{PostgresCpuSeconds:F1}");
        }

        if (standbyPostmasterPid is not null)
        {
            report += string.Create(CultureInfo.InvariantCulture, $", postgres standby {cpu.Standby - _cpu.Standby:F1}");
        }

        report += "; " + MachineShares(_machine, machine);
        if (wal is { } after && _wal is { } before)
        {
            report += $"; pg_stat_wal: {after.Writes - before.Writes} WAL writes, {after.Syncs - before.Syncs} WAL syncs";
        }

        if (patientScans is { } scansAfter && _patientScans is { } scansBefore)
        {
            report += $"; scans of patients on the primary: {scansAfter - scansBefore}";
        }

        if (_statements && postgresConnectionString is not null)
        {
            report += "\n" + await TopStatementsAsync(postgresConnectionString, elapsed);
        }

        if (_perf is not null)
        {
            var output = await _perf.StandardError.ReadToEndAsync();
            await _perf.WaitForExitAsync();
            var counts = output.Split('\n').Where(l => l.Contains("syscalls:", StringComparison.Ordinal))
                .Select(l => l.Split(',')).Select(f => $"{f[2].Replace("syscalls:sys_enter_", "", StringComparison.Ordinal)} {f[0]}");
            report += $"; server syscalls (perf stat, {elapsed.TotalSeconds:F0} s): {string.Join(", ", counts)}";
        }

        if (_counters is not null && _countersFile is not null)
        {
            await _counters.StandardOutput.ReadToEndAsync();
            await _counters.WaitForExitAsync();
            report += "; " + CommitBatches(_countersFile);
            File.Delete(_countersFile);
        }

        return report;
    }

    // Each line: timestamp,provider,counter name,type,value; the histogram comes as [Percentile=50|95|99] per second.
    private static string CommitBatches(string csv)
    {
        if (!File.Exists(csv))
        {
            return "no dotnet-counters output";
        }

        var rows = File.ReadLines(csv).Skip(1).Select(l => l.Split(',')).Where(f => f.Length >= 5).ToList();
        List<double> Values(string name) => [.. rows.Where(f => f[2] == name).Select(f => double.Parse(f[4], CultureInfo.InvariantCulture)).Order()];
        var p50 = Values("pit.submissions.commit_batch[Percentile=50]");
        var p99 = Values("pit.submissions.commit_batch[Percentile=99]");
        return p50.Count == 0
            ? "no commit batches recorded"
            : string.Create(CultureInfo.InvariantCulture,
                $"group-commit batch size over {p50.Count} one-second windows: p50 {p50[0]}..{p50[^1]} (median {p50[p50.Count / 2]}), p99 up to {p99[^1]}");
    }

    // The first line of /proc/stat: user nice system idle iowait irq softirq steal (ticks). Steal is time the
    // hypervisor gave this VM's vCPUs to someone else: a run with much of it measured a slower machine.
    private static long[] Machine() =>
        [.. File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8).Select(v => long.Parse(v, CultureInfo.InvariantCulture))];

    private static string MachineShares(long[] before, long[] after)
    {
        var delta = after.Zip(before, (a, b) => (double)(a - b)).ToArray();
        var total = delta.Sum();
        if (total <= 0)
        {
            return "machine CPU not read";
        }

        double Share(params int[] fields) => 100 * fields.Sum(i => delta[i]) / total;
        return string.Create(CultureInfo.InvariantCulture,
            $"machine CPU: busy {Share(0, 1, 2, 5, 6):F0}%, iowait {Share(4):F0}%, idle {Share(3):F0}%, steal {Share(7):F0}%");
    }

    private static Process Start(string program, string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"Could not start {program}.");
    }

    // pg_stat_statements (preloaded by the harness's own cluster under --diagnose): what the database spends its time on.
    private static async Task ResetStatementsAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();", connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<string> TopStatementsAsync(string connectionString, TimeSpan elapsed)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("""
            SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
            FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT 12;
            """, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var lines = new List<string> { "pg_stat_statements, top 12 by execution time (calls/s, ms per call, rows per call, statement):" };
        while (await reader.ReadAsync())
        {
            var calls = reader.GetInt64(0);
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"  {calls / elapsed.TotalSeconds,8:F0}/s {reader.GetDouble(1) / Math.Max(1, calls),8:F3} ms {(double)reader.GetInt64(2) / Math.Max(1, calls),6:F1}  {reader.GetString(3)}"));
        }

        return string.Join('\n', lines);
    }

    private async Task<(long Writes, long Syncs)?> WalAsync()
    {
        if (postgresConnectionString is null)
        {
            return null;
        }

        await using var connection = new NpgsqlConnection(postgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT wal_write, wal_sync FROM pg_stat_wal;", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    // Index and sequential scans of the patients table on the primary (pg_stat_user_tables): the page queries and reads
    // by id that run there. With reads on a standby, what is left is the apply's own.
    private async Task<long?> PatientScansAsync()
    {
        if (postgresConnectionString is null)
        {
            return null;
        }

        await using var connection = new NpgsqlConnection(postgresConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT pg_stat_clear_snapshot(), coalesce(sum(coalesce(idx_scan, 0) + coalesce(seq_scan, 0)), 0)::bigint FROM pg_stat_user_tables WHERE relname = 'patients';", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return reader.GetInt64(1);
    }

    private (double Client, double Server, double Postgres, double Standby) Cpu() =>
        (Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds, Ticks(serverPid, withChildren: false), ClusterTicks(postmasterPid), ClusterTicks(standbyPostmasterPid));

    // The postmaster's own and its reaped children's time, plus every live child (backends, walwriter, walsender, ...).
    private static double ClusterTicks(int? postmasterPid)
    {
        if (postmasterPid is not { } pm)
        {
            return 0;
        }

        var ticks = Ticks(pm, withChildren: true);
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && Stat(pid) is { } fields && fields[1] == pm.ToString(CultureInfo.InvariantCulture))
            {
                ticks += Ticks(pid, withChildren: false);
            }
        }

        return ticks;
    }

    // /proc/<pid>/stat after the command name: state, ppid, ... utime (index 11), stime, cutime, cstime; 100 ticks a second.
    private static double Ticks(int pid, bool withChildren)
    {
        if (Stat(pid) is not { } f)
        {
            return 0;
        }

        var ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        if (withChildren)
        {
            ticks += long.Parse(f[13], CultureInfo.InvariantCulture) + long.Parse(f[14], CultureInfo.InvariantCulture);
        }

        return ticks / 100.0;
    }

    private static string[]? Stat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
