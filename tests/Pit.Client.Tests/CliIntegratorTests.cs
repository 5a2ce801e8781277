using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.IdentityModel.Tokens;
using Pit.Cli;
using Pit.Client.Tests.Infrastructure;
using Pit.Security;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;
using Spectre.Console;

namespace Pit.Client.Tests;

/// <summary>
/// What an integrator meets first with <c>pit</c>: submission ids and their status, the documented exit codes,
/// messages that say what to do, stopping a follow with SIGTERM, and synthetic identity numbers for tests.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed partial class CliIntegratorTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("pit-cli-int-");

    [Fact]
    public async Task Submit_without_wait_prints_each_submission_id_and_status_url_and_status_follows_them_to_the_patient()
    {
        await using var server = await TestServer.StartAsync();
        var patients = RealPit.CopyExamples(_folder.FullName);

        var text = await Pit(server, "submit", Path.Combine(patients, "emil-berg.json"));
        var json = await Pit(server, "submit", patients, "--json");

        Assert.True(text.ExitCode == 0, text.ToString());
        var line = Assert.Single(text.Out.Split('\n'), l => l.Contains("emil-berg.json", StringComparison.Ordinal));
        Assert.Matches($@"emil-berg\.json\s+\S+\s+queued\s+{Regex.Escape(server.BaseAddress.AbsoluteUri)}v1/submissions/\S+", line);
        Assert.True(json.ExitCode == 0, json.ToString());
        var lines = json.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(6, lines.Count);
        Assert.All(lines, l => Assert.Equal("queued", (string?)l["status"]));
        Assert.All(lines, l => Assert.EndsWith("/v1/submissions/" + (string?)l["id"], (string?)l["statusUrl"], StringComparison.Ordinal));
        Assert.Contains("Summary", json.Error, StringComparison.Ordinal);

        // Status by id and by URL, until processed; then it names the Patient, which pit get can read.
        var first = lines[0];
        CliRun byId;
        var tries = 0;
        do
        {
            await Task.Delay(tries++ == 0 ? 0 : 100);
            byId = await Pit(server, "status", (string)first["id"]!, "--json");
            Assert.True(byId.ExitCode == 0, byId.ToString());
        }
        while (byId.Out.Contains("\"queued\"", StringComparison.Ordinal) && tries < 100);

        var status = JsonNode.Parse(byId.Out)!;
        Assert.Equal("processed", (string?)status["status"]);
        var patient = (string)status["patient"]!;
        Assert.StartsWith("Patient/", patient, StringComparison.Ordinal);
        var byUrl = await Pit(server, "status", (string)first["statusUrl"]!);
        Assert.True(byUrl.ExitCode == 0, byUrl.ToString());
        Assert.Contains("processed " + patient, byUrl.Out, StringComparison.Ordinal);
        Assert.True((await Pit(server, "get", patient["Patient/".Length..])).ExitCode == 0);
    }

    [Fact]
    public async Task Status_of_a_failed_submission_gives_its_reason_and_exits_1_and_an_unknown_one_exits_6()
    {
        await using var server = await TestServer.StartAsync();
        var first = NorwegianIdentityNumbers.Synthetic(new DateOnly(1970, 1, 2));
        var second = NorwegianIdentityNumbers.Synthetic(new DateOnly(1971, 2, 3));
        Write("a.json", Patient(first));
        Write("b.json", Patient(second));
        await Pit(server, "submit", "a.json", "b.json", "--wait");
        // One Patient claiming the identifiers of two stored Patients cannot be applied.
        var both = Patient(first);
        both["identifier"]!.AsArray().Add(new JsonObject { ["system"] = "urn:oid:2.16.578.1.12.4.1.4.1", ["value"] = second });
        Write("both.json", both);
        var submitted = await Pit(server, "submit", "both.json", "--json", "--wait");
        var id = (string)JsonNode.Parse(submitted.Out)!["id"]!;

        var failed = await Pit(server, "status", id);
        var unknown = await Pit(server, "status", "no-such-submission");

        Assert.True(submitted.ExitCode == 1, submitted.ToString());
        Assert.True(failed.ExitCode == 1, failed.ToString());
        Assert.Contains("failed", failed.Out, StringComparison.Ordinal);
        Assert.Contains("identifiers", failed.Out, StringComparison.OrdinalIgnoreCase);
        Assert.True(unknown.ExitCode == 6, unknown.ToString());
    }

    [Fact]
    public async Task The_readmes_exit_code_table_is_the_one_ExitCodes_defines()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(RealPit.RepositoryRoot(), "README.md"));
        var table = readme[readme.IndexOf("Exit codes:", StringComparison.Ordinal)..];
        table = table[..table.IndexOf("\n\n", StringComparison.Ordinal)];
        var documented = ExitCodeEntry().Matches(table).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

        Assert.Equal(
            [ExitCodes.Ok, ExitCodes.Failed, ExitCodes.Usage, ExitCodes.BadRequest, ExitCodes.Unauthorized, ExitCodes.Forbidden, ExitCodes.NotFound, ExitCodes.Unavailable],
            documented);
    }

    [Fact]
    public async Task A_mix_of_accepted_and_refused_exits_1_and_only_refusals_exit_3()
    {
        await using var server = await TestServer.StartAsync();
        var folder = RealPit.CopyExamples(_folder.FullName, "mixed");
        File.WriteAllText(Path.Combine(folder, "no-identifier.json"), """{"resourceType":"Patient","name":[{"family":"Uten"}]}""");
        Write("only-bad.json", new JsonObject { ["resourceType"] = "Patient", ["name"] = new JsonArray(new JsonObject { ["family"] = "Uten" }) });

        var mixed = await Pit(server, "submit", folder);
        var refused = await Pit(server, "submit", "only-bad.json");

        Assert.True(mixed.ExitCode == ExitCodes.Failed, mixed.ToString());
        Assert.True(refused.ExitCode == ExitCodes.BadRequest, refused.ToString());
    }

    [Fact]
    public async Task A_server_that_is_down_exits_7_and_a_failed_sync_leaves_no_file_behind()
    {
        var port = FreePort();
        var down = new Uri($"http://127.0.0.1:{port}/");

        var submit = await CliRun.RunAsync(_folder.FullName, ["--base-url", down.AbsoluteUri, "--authority", new Uri(down, "helseid-standin").AbsoluteUri,
            "--client-id", RealPit.DevClientId, "--key-file", RealPit.DevKeyFile(), "search"]);
        await using var server = await TestServer.StartAsync();
        // Token from a running stand-in, then the PIT server itself unreachable.
        var sync = await CliRun.RunAsync(_folder.FullName, ["--base-url", down.AbsoluteUri, "--authority", RealPit.Authority(server).AbsoluteUri,
            "--client-id", RealPit.DevClientId, "--key-file", RealPit.DevKeyFile(), "sync", "--out", "feed.ndjson"]);

        Assert.True(submit.ExitCode == ExitCodes.Unavailable, submit.ToString());
        Assert.Contains("Could not reach", submit.Error, StringComparison.Ordinal);
        Assert.True(sync.ExitCode == ExitCodes.Unavailable, sync.ToString());
        Assert.Contains("Is it running", sync.Error, StringComparison.Ordinal);
        Assert.Empty(_folder.GetFiles("feed.ndjson*"));
    }

    [Fact]
    public async Task The_newcomer_recipe_syncs_into_the_git_ignored_data_folder_which_need_not_exist_yet()
    {
        var root = RealPit.RepositoryRoot();
        var recipe = (await File.ReadAllLinesAsync(Path.Combine(root, "README.md"))).Single(l => l.Contains("--dev sync --out", StringComparison.Ordinal));
        Assert.Contains("--out data/patients.ndjson", recipe, StringComparison.Ordinal);
        Assert.Contains("data/", await File.ReadAllLinesAsync(Path.Combine(root, ".gitignore")));
        await using var server = await TestServer.StartAsync();
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");

        var run = await Pit(server, "sync", "--out", "data/patients.ndjson");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(6, Lines(Path.Combine(_folder.FullName, "data", "patients.ndjson")));
    }

    [Fact]
    public async Task A_value_that_does_not_parse_is_explained_without_dotnet_type_names()
    {
        var run = await CliRun.RunAsync(_folder.FullName, ["search", "--count", "abc"]);
        var wait = await CliRun.RunAsync(_folder.FullName, ["submit", "x.json", "--wait-timeout", "soon"]);

        Assert.True(run.ExitCode == ExitCodes.Usage, run.ToString());
        Assert.Contains("--count needs a whole number, e.g. 20, not 'abc'.", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", run.Error, StringComparison.Ordinal);
        Assert.Contains("--wait-timeout needs a duration as hh:mm:ss", wait.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", wait.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_without_resourceType_is_not_sent_and_the_message_says_to_add_it()
    {
        await using var server = await TestServer.StartAsync();
        var patient = Patient(NorwegianIdentityNumbers.Synthetic(new DateOnly(1990, 5, 6)));
        patient.Remove("resourceType");
        Write("no-type.json", patient);
        Write("observation.json", new JsonObject { ["resourceType"] = "Observation" });

        var run = await Pit(server, "submit", "no-type.json", "observation.json");

        Assert.True(run.ExitCode == ExitCodes.BadRequest, run.ToString());
        Assert.Contains("no-type.json: not sent", run.Error, StringComparison.Ordinal);
        Assert.Contains("add \"resourceType\": \"Patient\" at the top level", run.Error, StringComparison.Ordinal);
        Assert.Contains("It is a Observation, not a Patient", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("UnnamedResource", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pem_key_where_a_jwk_is_expected_is_named_as_such()
    {
        var pem = Path.Combine(RealPit.RepositoryRoot(), "dev", "helseid-standin", "dev-client.pem");

        var run = await CliRun.RunAsync(_folder.FullName, ["--base-url", "http://127.0.0.1:9/", "--authority", "http://127.0.0.1:9/", "--client-id", "c", "--key-file", pem, "search"]);

        Assert.True(run.ExitCode == ExitCodes.Usage, run.ToString());
        Assert.Contains("This is a PEM key, but a JSON Web Key (JWK) is expected", run.Error, StringComparison.Ordinal);
        Assert.Contains("dev-client.jwk.json", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("invalid start of a value", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_token_signed_by_a_key_the_server_does_not_know_gets_the_stand_in_restart_hint()
    {
        await using var server = await TestServer.StartAsync();
        // What a token from before a stand-in restart is: the same issuer, signed with a key the server no longer knows.
        using var rsa = RSA.Create(2048);
        var earlier = new AccessTokenMinter(new SigningCredentials(new RsaSecurityKey(rsa), SecurityAlgorithms.RsaSha256), server.TokenMinter.Issuer, "nhn:pit");
        using var key = DpopKey.CreateEcP256();
        var token = earlier.Mint(new AccessTokenSpec { Jkt = key.Thumbprint, OrgnrParent = TestServer.DefaultOrganisation, Scopes = [AccessTokenMinter.ReadScope] });
        using var http = new HttpClient(new DpopHttpHandler(key, token) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = server.BaseAddress };
        using var client = new PitClient(http);

        var refused = await Assert.ThrowsAsync<PitApiException>(async () => await client.SearchAsync().ToListAsync());
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(output) });
        console.Profile.Width = 400;
        ErrorReport.Write(console, refused);

        Assert.Equal(401, (int)refused.StatusCode);
        Assert.Contains("signature is invalid", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("makes a new signing key every time the server starts", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("get a new token", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_follow_stopped_with_SIGTERM_prints_its_summary_and_removes_its_lock_file()
    {
        await using var server = await TestServer.StartAsync();
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        var info = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = _folder.FullName,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in (string[])[PitDll(), .. RealPit.Connection(server), "sync", "--out", "patients.ndjson", "--follow", "--follow-wait", "20"])
        {
            info.ArgumentList.Add(arg);
        }

        using var pit = Process.Start(info)!;
        var stdout = pit.StandardOutput.ReadToEndAsync();
        var stderr = pit.StandardError.ReadToEndAsync();
        try
        {
            var ndjson = Path.Combine(_folder.FullName, "patients.ndjson");
            for (var i = 0; i < 600 && Lines(ndjson) < 6 && !pit.HasExited; i++)
            {
                await Task.Delay(50);
            }

            if (Lines(ndjson) < 6)
            {
                pit.Kill(entireProcessTree: true);
                Assert.Fail($"pit sync --follow wrote {Lines(ndjson)} of 6 lines:\n{await stdout}\n{await stderr}");
            }

            Assert.True(File.Exists(ndjson + ".state.json.lock"), "a following sync holds its lock file");
            using (var kill = Process.Start("kill", ["-TERM", pit.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await pit.WaitForExitAsync(timeout.Token);
            var report = $"exit {pit.ExitCode}\n{await stdout}\n{await stderr}";
            Assert.True(pit.ExitCode == 0, report);
            Assert.Contains("Stopped following", report, StringComparison.Ordinal);
            Assert.Contains("Appended 6 Patient version(s)", report, StringComparison.Ordinal);
            Assert.False(File.Exists(ndjson + ".state.json.lock"), "the lock file is removed");
        }
        finally
        {
            if (!pit.HasExited)
            {
                pit.Kill(entireProcessTree: true);
            }
        }
    }

    [Fact]
    public async Task Fnr_prints_distinct_synthetic_numbers_that_the_server_accepts()
    {
        await using var server = await TestServer.StartAsync();
        var run = await CliRun.RunAsync(_folder.FullName, ["fnr", "--count", "5"]);
        var born = await CliRun.RunAsync(_folder.FullName, ["fnr", "--born", "1985-03-14"]);
        var numbers = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(5, numbers.Distinct().Count());
        Assert.All(numbers, n => Assert.InRange(int.Parse(n.AsSpan(2, 2), provider: null), 81, 92));
        Assert.StartsWith("148385", born.Out, StringComparison.Ordinal);
        foreach (var (number, i) in numbers.Append(born.Out.Trim()).Select((n, i) => (n, i)))
        {
            Write($"p{i}.json", Patient(number));
        }

        var submit = await Pit(server, ["submit", .. numbers.Select((_, i) => $"p{i}.json"), $"p{numbers.Length}.json", "--wait"]);

        Assert.True(submit.ExitCode == 0, submit.ToString());
        Assert.Matches(@"processed\s*│\s*6", submit.Out);
    }

    public void Dispose()
    {
        try
        {
            _folder.Delete(recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [GeneratedRegex(@"`(\d)`")]
    private static partial Regex ExitCodeEntry();

    private static int Lines(string path)
    {
        if (!File.Exists(path))
        {
            return 0;
        }

        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        return reader.ReadToEnd().Count(c => c == '\n');
    }

    /// <summary>
    /// pit as built in its own project (same configuration): the copy in this test's folder runs with the test's
    /// dependency resolution, which lacks some of pit's own packages.
    /// </summary>
    private static string PitDll()
    {
        var framework = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var dll = Path.Combine(RealPit.RepositoryRoot(), "src", "Pit.Cli", "bin", framework.Parent!.Name, framework.Name, "pit.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: build the solution first.");
        return dll;
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static JsonObject Patient(string fnr) => new()
    {
        ["resourceType"] = "Patient",
        ["identifier"] = new JsonArray(new JsonObject { ["system"] = "urn:oid:2.16.578.1.12.4.1.4.1", ["value"] = fnr }),
        ["name"] = new JsonArray(new JsonObject { ["family"] = "Testesen", ["given"] = new JsonArray("Test") }),
    };

    private void Write(string name, JsonObject json) => File.WriteAllText(Path.Combine(_folder.FullName, name), json.ToJsonString());

    private Task<CliRun> Pit(TestServer server, params string[] args) =>
        CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server), .. args]);
}
