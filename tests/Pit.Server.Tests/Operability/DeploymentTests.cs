using System.Globalization;
using Pit.Server.Operability;
using Pit.Server.Processing;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Operability;

/// <summary>The deployment recipe of docs/OPERATIONS.md: scripts/publish.sh and the systemd units in deploy/.</summary>
public sealed class DeploymentTests
{
    private static readonly string Root = ServerCommandLine.RepositoryRoot();

    [Fact]
    public async Task The_publish_recipe_produces_a_folder_without_development_files()
    {
        var output = Path.Combine(Directory.CreateTempSubdirectory("pit-publish-").FullName, "pit-server");
        try
        {
            // --no-build: publish the Release build these tests run on (without it the script builds first, as an
            // operator runs it), so the test stays well under a minute.
            var publish = await ServerCommandLine.RunProgramAsync("bash", Root, [Path.Combine(Root, "scripts", "publish.sh"), output, "--no-build"]);
            Assert.True(publish.ExitCode == 0, publish.ToString());
            Assert.Contains($"Published Pit.Server {ServerVersion.Value} to {output}", publish.Output, StringComparison.Ordinal);

            var files = Directory.GetFiles(output, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(output, f)).ToList();
            Assert.Contains("Pit.Server.dll", files);
            Assert.Contains("appsettings.json", files);
            Assert.DoesNotContain(files, f => Path.GetFileName(f) is "appsettings.Development.json" or "launchSettings.json" or "web.config");
            Assert.DoesNotContain(files, f => f.EndsWith(".pem", StringComparison.Ordinal) || f.EndsWith(".jwk.json", StringComparison.Ordinal));
            // The stand-in's settings (its development clients and keys) live only in appsettings.Development.json.
            Assert.DoesNotContain("StandIn", await File.ReadAllTextAsync(Path.Combine(output, "appsettings.json")), StringComparison.Ordinal);

            // The published server runs from its own folder.
            var version = await ServerCommandLine.RunProgramAsync("dotnet", output, [Path.Combine(output, "Pit.Server.dll"), "--version"]);
            Assert.Equal(ServerVersion.Value, version.Output.Trim());
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(output)!, recursive: true);
        }
    }

    [Fact]
    public async Task The_systemd_units_pass_systemd_analyze_verify()
    {
        var folder = Directory.CreateTempSubdirectory("pit-units-").FullName;
        try
        {
            string[] units = ["pit-server.service", "pit-server-migrate.service", "pit-server-migrate.timer"];
            foreach (var unit in units)
            {
                var text = await File.ReadAllTextAsync(Path.Combine(Root, "deploy", unit));
                // verify checks that ExecStart's program exists. The units name /usr/bin/dotnet (where Debian's and
                // Microsoft's packages put it); on a machine whose dotnet lives elsewhere, point them at that one.
                if (!File.Exists("/usr/bin/dotnet"))
                {
                    text = text.Replace("ExecStart=/usr/bin/dotnet ", $"ExecStart={DotnetPath()} ", StringComparison.Ordinal);
                }

                await File.WriteAllTextAsync(Path.Combine(folder, unit), text);
            }

            var verify = await ServerCommandLine.RunProgramAsync("systemd-analyze", folder, ["verify", .. units.Select(u => Path.Combine(folder, u))]);
            Assert.True(verify.ExitCode == 0, verify.ToString());
            // verify reports unknown keys and unparsable values on standard error yet exits 0: demand silence.
            Assert.True(verify.Errors.Trim().Length == 0, verify.ToString());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task The_systemd_unit_is_hardened_and_waits_longer_than_the_server_drains()
    {
        var unit = await File.ReadAllTextAsync(Path.Combine(Root, "deploy", "pit-server.service"));
        var stop = TimeSpan.FromSeconds(int.Parse(Setting(unit, "TimeoutStopSec"), CultureInfo.InvariantCulture));
        Assert.DoesNotContain("Pit__ShutdownTimeout", unit, StringComparison.Ordinal);
        Assert.True(stop > ProcessingSetup.DefaultShutdownTimeout,
            $"TimeoutStopSec ({stop}) must exceed Pit:ShutdownTimeout's default ({ProcessingSetup.DefaultShutdownTimeout}), or systemd kills a draining server.");

        Assert.Equal("pit", Setting(unit, "User"));
        Assert.Equal("strict", Setting(unit, "ProtectSystem"));
        Assert.Equal("/var/lib/pit-server", Setting(unit, "ReadWritePaths"));
        Assert.Equal("yes", Setting(unit, "NoNewPrivileges"));
        Assert.Equal("yes", Setting(unit, "PrivateTmp"));
        Assert.Equal("yes", Setting(unit, "ProtectHome"));
        Assert.Equal("on-failure", Setting(unit, "Restart"));
        Assert.Equal(ServerCommands.UsageError.ToString(CultureInfo.InvariantCulture), Setting(unit, "RestartPreventExitStatus"));
        Assert.Contains("Environment=ASPNETCORE_ENVIRONMENT=Production\n", unit, StringComparison.Ordinal);
        Assert.Contains("Environment=ASPNETCORE_URLS=", unit, StringComparison.Ordinal);
        Assert.Contains("\"Pit__Storage__ConnectionString=Data Source=/var/lib/pit-server/pit.db\"", unit, StringComparison.Ordinal);
    }

    private static string Setting(string unit, string key) =>
        Assert.Single(unit.Split('\n'), l => l.StartsWith(key + "=", StringComparison.Ordinal)).Split('=', 2)[1].Trim();

    private static string DotnetPath() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.GetEnvironmentVariable("PATH")!.Split(':').Select(p => Path.Combine(p, "dotnet")).First(File.Exists);
}
