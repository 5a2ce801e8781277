using System.Text.Json.Nodes;
using Pit.Client.Tests.Infrastructure;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests;

/// <summary>
/// The <c>pit</c> commands against the real server on Kestrel loopback, as the development client (what
/// <see cref="EndToEndTests"/> already covers is not repeated here).
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class CliTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("pit-cli-");

    [Fact]
    public async Task A_sync_that_died_after_writing_part_of_a_page_is_repaired_by_the_next_run()
    {
        await using var server = await TestServer.StartAsync();
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        await Pit(server, "sync", "--out", "patients.ndjson");
        // A run that died after writing part of a page but before saving its state.
        File.AppendAllText(Path.Combine(_folder.FullName, "patients.ndjson"), """{"resourceType":"Patient","id":"half""");

        var again = await Pit(server, "sync", "--out", "patients.ndjson");

        Assert.True(again.ExitCode == 0, again.ToString());
        var ids = NdjsonIds();
        Assert.Equal(6, ids.Count);
        Assert.Equal(6, ids.Distinct().Count());
    }

    [Fact]
    public async Task Sync_with_follow_appends_news_as_it_becomes_visible_until_stopped_and_a_later_run_resumes_after_it()
    {
        await using var server = await TestServer.StartAsync();
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        using var stop = new CancellationTokenSource();

        var following = CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server), "sync", "--out", "patients.ndjson", "--follow", "--follow-wait", "20"],
            cancellationToken: stop.Token);
        await LinesAsync(6);
        var newcomer = JsonNode.Parse(File.ReadAllText(Path.Combine(RealPit.ExamplesFolder(), "magnus-strand.json")))!;
        newcomer["identifier"]![0]!["value"] = "21858412312";
        var file = Path.Combine(_folder.FullName, "newcomer.json");
        File.WriteAllText(file, newcomer.ToJsonString());
        await Pit(server, "submit", file, "--wait");
        await LinesAsync(7);
        Assert.False(following.IsCompleted, "sync --follow ended by itself.");

        await stop.CancelAsync();
        var run = await following.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("Stopped following", run.Out, StringComparison.Ordinal);
        var again = await Pit(server, "sync", "--out", "patients.ndjson");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("Appended 0 Patient version(s)", again.Out, StringComparison.Ordinal);
        Assert.Equal(7, NdjsonIds().Distinct().Count());
    }

    [Fact]
    public async Task A_second_sync_while_one_runs_is_refused()
    {
        await using var server = await TestServer.StartAsync();
        var state = Path.Combine(_folder.FullName, "patients.ndjson.state.json");
        using var held = new FileStream(state + ".lock", FileMode.Create, FileAccess.ReadWrite, FileShare.None);

        var run = await Pit(server, "sync", "--out", "patients.ndjson");

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains("Another pit sync", run.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_folder.FullName, "patients.ndjson")));
    }

    [Fact]
    public async Task Submit_reports_every_refused_file_with_its_OperationOutcome_and_a_mix_with_accepted_ones_exits_1()
    {
        await using var server = await TestServer.StartAsync();
        var folder = RealPit.CopyExamples(_folder.FullName, "mixed");
        File.WriteAllText(Path.Combine(folder, "no-identifier.json"), """{"resourceType":"Patient","name":[{"family":"Uten"}]}""");
        var valid = JsonNode.Parse(File.ReadAllText(Path.Combine(RealPit.ExamplesFolder(), "magnus-strand.json")))!;
        valid["identifier"]![0]!["value"] = "21858412312";
        File.WriteAllText(Path.Combine(folder, "broken.ndjson"), valid.ToJsonString() + "\nnot json\n");

        var run = await Pit(server, "submit", folder, "--parallel", "3");

        Assert.True(run.ExitCode == 1, run.ToString());
        Assert.Contains("no-identifier.json: refused with 400 BadRequest", run.Error, StringComparison.Ordinal);
        Assert.Contains("The Patient needs at least one identifier with a Norwegian person identifier system", run.Error, StringComparison.Ordinal);
        Assert.Contains("(at Patient.identifier)", run.Error, StringComparison.Ordinal);
        Assert.Contains("broken.ndjson:2: refused with 400 BadRequest", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("broken.ndjson:1", run.Error, StringComparison.Ordinal);
        Assert.Matches(@"accepted \(202\)\s*│\s*7", run.Out);
    }

    [Fact]
    public async Task Get_prints_a_patient_found_by_search_and_a_missing_one_exits_6()
    {
        await using var server = await TestServer.StartAsync();
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        var search = await Pit(server, "search", "--count", "1", "--ndjson");
        var id = JsonNode.Parse(search.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0])!["id"]!.GetValue<string>();

        var found = await Pit(server, "get", id);
        var missing = await Pit(server, "get", "nobody");

        Assert.True(found.ExitCode == 0, found.ToString());
        var patient = JsonNode.Parse(found.Out)!;
        Assert.Equal("Patient", patient["resourceType"]!.GetValue<string>());
        Assert.Equal(id, patient["id"]!.GetValue<string>());
        Assert.True(missing.ExitCode == 6, missing.ToString());
    }

    [Fact]
    public async Task Search_passes_its_parameters_and_prints_ndjson_across_pages()
    {
        await using var server = await TestServer.StartAsync();
        var before = Instant(DateTimeOffset.UtcNow.AddMinutes(-1));
        var tomorrow = Instant(DateTimeOffset.UtcNow.AddDays(1));
        await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName), "--wait");
        using var recorder = new RecordingHandler();

        var run = await CliRun.RunAsync(_folder.FullName,
            [.. RealPit.Connection(server), "search", "--last-updated", "ge" + before, "--count", "2", "--sort", "_lastUpdated", "--ndjson"], recorder);
        var none = await Pit(server, "search", "--last-updated", "gt" + tomorrow, "--ndjson");

        Assert.True(run.ExitCode == 0, run.ToString());
        var lines = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length);
        Assert.Equal(6, lines.Select(l => JsonNode.Parse(l)!["id"]!.GetValue<string>()).Distinct().Count());
        var searches = recorder.Seen.Where(r => r.Method == HttpMethod.Get && r.Url.AbsolutePath == "/v1/Patient").ToList();
        Assert.Equal(3, searches.Count);
        Assert.Equal($"?_lastUpdated=ge{Uri.EscapeDataString(before)}&_count=2&_sort=_lastUpdated", searches[0].Url.Query);
        Assert.True(none.ExitCode == 0, none.ToString());
        Assert.Empty(none.Out.Trim());
    }

    [Fact]
    public async Task Settings_layer_file_then_environment_then_flags()
    {
        await using var server = await TestServer.StartAsync();
        File.WriteAllText(Path.Combine(_folder.FullName, "pit.json"), new JsonObject
        {
            ["baseUrl"] = "http://127.0.0.1:9/",
            ["authority"] = RealPit.Authority(server).AbsoluteUri,
            ["clientId"] = "unregistered-client",
            ["keyFile"] = RealPit.DevKeyFile(),
        }.ToJsonString());
        var environment = new Dictionary<string, string> { ["PIT_CONFIG"] = "pit.json", ["PIT_CLIENT_ID"] = RealPit.DevClientId };

        // The file alone would fail twice (an unreachable base URL, a client the stand-in does not know): success
        // means the environment's client id beat the file's and the flag's base URL beat both.
        var run = await CliRun.RunAsync(_folder.FullName, ["search", "--base-url", server.BaseAddress.AbsoluteUri], environment: environment);

        Assert.True(run.ExitCode == 0, run.ToString());
    }

    [Fact]
    public async Task Missing_settings_are_a_usage_error()
    {
        // Refused before anything is sent, so no server is needed.
        var run = await CliRun.RunAsync(_folder.FullName, ["search", "--base-url", "http://127.0.0.1:9/"]);

        Assert.True(run.ExitCode == 2, run.ToString());
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

    /// <summary>Waits (at most 10 s) until the NDJSON file holds <paramref name="count"/> complete lines.</summary>
    private async Task LinesAsync(int count)
    {
        var path = Path.Combine(_folder.FullName, "patients.ndjson");
        var lines = 0;
        for (var i = 0; i < 200 && lines < count; i++)
        {
            await Task.Delay(50);
            if (File.Exists(path))
            {
                using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
                lines = (await reader.ReadToEndAsync()).Count(c => c == '\n');
            }
        }

        Assert.Equal(count, lines);
    }

    private Task<CliRun> Pit(TestServer server, params string[] args) =>
        CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server), .. args]);

    private static string Instant(DateTimeOffset time) => time.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private List<string> NdjsonIds() => [.. File.ReadAllLines(Path.Combine(_folder.FullName, "patients.ndjson"))
        .Where(l => l.Length > 0)
        .Select(l => JsonNode.Parse(l)!["id"]!.GetValue<string>())];
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
