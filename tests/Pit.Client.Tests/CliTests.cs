using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pit.Client.Tests.Infrastructure;

namespace Pit.Client.Tests;

/// <summary>The <c>pit</c> commands against the in-memory PIT look-alike (the end-to-end tests use the real server).</summary>
public sealed class CliTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("pit-cli-");
    private readonly FakePitServer _server = new();

    public CliTests()
    {
        File.WriteAllText(Path.Combine(_folder.FullName, "client.jwk.json"), TestKeys.RsaPrivateJwk("cli"));
    }

    private string[] Connection =>
        ["--base-url", FakePitServer.BaseUrl, "--authority", "https://helseid.example", "--client-id", "my-client", "--key-file", "client.jwk.json"];

    [Fact]
    public async Task Submit_a_folder_with_wait_then_sync_writes_every_patient_once()
    {
        var examples = CopyExamples("patients");

        var submit = await Pit(["submit", examples, "--wait"]);
        var sync = await Pit(["sync", "--out", "patients.ndjson"]);

        Assert.True(submit.ExitCode == 0, submit.ToString());
        Assert.Contains("processed", submit.Out, StringComparison.Ordinal);
        Assert.True(sync.ExitCode == 0, sync.ToString());
        var lines = NdjsonIds();
        Assert.Equal(6, lines.Count);
        Assert.Equal(6, lines.Distinct().Count());
    }

    [Fact]
    public async Task Sync_resumes_after_more_are_added_and_misses_or_repeats_nothing()
    {
        var examples = CopyExamples("patients");
        await Pit(["submit", examples]);
        await Pit(["sync", "--out", "patients.ndjson", "--count", "4"]);
        var firstState = JsonNode.Parse(File.ReadAllText(Path.Combine(_folder.FullName, "patients.ndjson.state.json")))!;

        // One Patient changes (a new version), one is new; the rest are unchanged resubmissions.
        var changed = JsonNode.Parse(File.ReadAllText(Path.Combine(examples, "emil-berg.json")))!;
        changed["telecom"] = new JsonArray { new JsonObject { ["system"] = "phone", ["value"] = "+4799887766", ["use"] = "mobile" } };
        File.WriteAllText(Path.Combine(examples, "emil-berg.json"), changed.ToJsonString());
        var added = JsonNode.Parse(File.ReadAllText(Path.Combine(examples, "astrid-lien.json")))!;
        added["identifier"]![0]!["value"] = "15857812345";
        File.WriteAllText(Path.Combine(examples, "new.ndjson"), added.ToJsonString() + "\n");
        var resubmit = await Pit(["submit", examples]);
        var second = await Pit(["sync", "--out", "patients.ndjson", "--count", "4"]);
        var third = await Pit(["sync", "--out", "patients.ndjson"]);

        Assert.True(resubmit.ExitCode == 0, resubmit.ToString());
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("Appended 2 ", second.Out, StringComparison.Ordinal);
        Assert.Contains("Appended 0 ", third.Out, StringComparison.Ordinal);
        var versions = NdjsonVersions();
        Assert.Equal(8, versions.Count);
        Assert.Equal(versions.Count, versions.Distinct().Count());
        var resumed = _server.Handler.Seen.First(r => r.Url.Query.Contains("_lastUpdated=gt", StringComparison.Ordinal));
        Assert.Contains("_lastUpdated=gt" + Uri.EscapeDataString(firstState["lastUpdated"]!.GetValue<string>()), resumed.Url.Query, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sync_drops_a_page_that_was_written_but_not_recorded()
    {
        await Pit(["submit", CopyExamples("patients")]);
        await Pit(["sync", "--out", "patients.ndjson"]);
        // A run that died after writing part of a page but before saving its state.
        File.AppendAllText(Path.Combine(_folder.FullName, "patients.ndjson"), """{"resourceType":"Patient","id":"half""");

        var again = await Pit(["sync", "--out", "patients.ndjson"]);

        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(6, NdjsonIds().Count);
    }

    [Fact]
    public async Task A_second_sync_while_one_runs_is_refused()
    {
        var state = Path.Combine(_folder.FullName, "patients.ndjson.state.json");
        using var held = new FileStream(state + ".lock", FileMode.Create, FileAccess.ReadWrite, FileShare.None);

        var run = await Pit(["sync", "--out", "patients.ndjson"]);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("Another pit sync", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Submit_reports_every_refused_file_with_its_OperationOutcome_and_exits_3()
    {
        var folder = CopyExamples("mixed");
        File.WriteAllText(Path.Combine(folder, "no-identifier.json"), """{"resourceType":"Patient","name":[{"family":"Uten"}]}""");
        File.WriteAllText(Path.Combine(folder, "broken.ndjson"), "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"1\"}]}\nnot json\n");

        var run = await Pit(["submit", folder, "--parallel", "3"]);

        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("no-identifier.json: refused with 400 BadRequest", run.Error, StringComparison.Ordinal);
        Assert.Contains("A Patient needs a Norwegian person identifier. (at Patient.identifier)", run.Error, StringComparison.Ordinal);
        Assert.Contains("broken.ndjson:2: refused with 400", run.Error, StringComparison.Ordinal);
        Assert.Matches(@"accepted \(202\)\s*│\s*7", run.Out);
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized, 4, "Not authenticated")]
    [InlineData(HttpStatusCode.Forbidden, 5, "Not allowed")]
    public async Task Refusals_are_explained_with_a_non_zero_exit_code(HttpStatusCode status, int exitCode, string explanation)
    {
        _server.RefuseWith = status;

        var search = await Pit(["search"]);
        var submit = await Pit(["submit", CopyExamples("patients")]);

        Assert.Equal(exitCode, search.ExitCode);
        Assert.Contains(explanation, search.Error, StringComparison.Ordinal);
        Assert.Contains("WWW-Authenticate: DPoP error=", search.Error, StringComparison.Ordinal);
        Assert.Equal(exitCode, submit.ExitCode);
    }

    [Fact]
    public async Task Get_prints_the_patient_and_a_missing_one_exits_6()
    {
        await Pit(["submit", CopyExamples("patients")]);

        var found = await Pit(["get", "p1"]);
        var missing = await Pit(["get", "nobody"]);

        Assert.Equal(0, found.ExitCode);
        Assert.Equal("p1", JsonNode.Parse(found.Out)!["id"]!.GetValue<string>());
        Assert.Equal(6, missing.ExitCode);
    }

    [Fact]
    public async Task Search_passes_its_parameters_and_prints_ndjson()
    {
        await Pit(["submit", CopyExamples("patients")]);

        var run = await Pit(["search", "--last-updated", "ge2026-11-25T08:00Z", "--count", "2", "--sort", "_lastUpdated", "--ndjson"]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(6, run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var first = _server.Handler.Seen.First(r => r.Method == HttpMethod.Get && r.Url.AbsolutePath == "/v1/Patient");
        Assert.Equal("?_lastUpdated=ge2026-11-25T08%3A00Z&_count=2&_sort=_lastUpdated", first.Url.Query);
    }

    [Fact]
    public async Task Settings_layer_file_then_environment_then_flags()
    {
        File.WriteAllText(Path.Combine(_folder.FullName, "pit.json"),
            """{ "baseUrl": "https://from-file.example/", "authority": "https://helseid.example", "clientId": "file-client", "keyFile": "client.jwk.json" }""");
        var environment = new Dictionary<string, string> { ["PIT_CONFIG"] = "pit.json", ["PIT_CLIENT_ID"] = "env-client" };

        // The file's base URL is unreachable in this test; the flag wins over it and the environment's client id is used.
        var run = await CliRun.RunAsync(_folder.FullName, ["search", "--base-url", FakePitServer.BaseUrl], _server.Handler, environment);

        Assert.True(run.ExitCode == 0, run.ToString());
        var tokenRequest = _server.Handler.Seen.Single(r => r.Method == HttpMethod.Post);
        Assert.Contains("client_id=env-client", tokenRequest.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Missing_settings_are_a_usage_error()
    {
        var run = await CliRun.RunAsync(_folder.FullName, ["search", "--base-url", FakePitServer.BaseUrl], _server.Handler);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains("No client id", run.Error, StringComparison.Ordinal);
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

    private Task<CliRun> Pit(string[] args) => CliRun.RunAsync(_folder.FullName, [.. Connection, .. args], _server.Handler);

    private string CopyExamples(string name)
    {
        var target = Directory.CreateDirectory(Path.Combine(_folder.FullName, name)).FullName;
        foreach (var file in Directory.EnumerateFiles(ExamplesFolder(), "*.json"))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }

        return target;
    }

    private List<string> NdjsonIds() => [.. Ndjson().Select(p => p["id"]!.GetValue<string>())];

    private List<string> NdjsonVersions() => [.. Ndjson().Select(p => p["id"]!.GetValue<string>() + "/" + p["meta"]!["versionId"]!.GetValue<string>())];

    private IEnumerable<JsonNode> Ndjson() => File.ReadAllLines(Path.Combine(_folder.FullName, "patients.ndjson"))
        .Where(l => l.Length > 0)
        .Select(l => JsonNode.Parse(l)!);

    internal static string ExamplesFolder()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Pit.slnx")))
            {
                return Path.Combine(folder.FullName, "examples");
            }
        }

        throw new DirectoryNotFoundException("examples/ not found above the test output folder.");
    }
}

public sealed class CliJsonTests
{
    [Fact]
    public void Ndjson_lines_keep_the_servers_text_and_only_multi_line_json_is_compacted()
    {
        const string compact = """{"resourceType":"Patient","address":[{"city":"TROMS\u00D8"}]}""";
        const string indented = "{\n  \"resourceType\": \"Patient\",\n  \"address\": [ { \"city\": \"TROMSØ\" } ]\n}";

        Assert.Same(compact, Pit.Cli.Commands.SyncCommand.OneLine(compact));
        Assert.Equal("""{"resourceType":"Patient","address":[{"city":"TROMSØ"}]}""", Pit.Cli.Commands.SyncCommand.OneLine(indented));
    }

    [Fact]
    public void Json_shown_to_people_keeps_Norwegian_letters_and_plus_signs()
    {
        var shown = Pit.Cli.Commands.ReadCommands.Pretty("""{"typ":"at\u002Bjwt","city":"TROMS\u00D8"}""");

        Assert.Contains("\"at+jwt\"", shown, StringComparison.Ordinal);
        Assert.Contains("\"TROMSØ\"", shown, StringComparison.Ordinal);
    }
}
