using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Pit.Client.Tests.Infrastructure;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests;

/// <summary>
/// <c>pit</c> and Pit.Client against the real server on Kestrel loopback, with its in-process HelseID stand-in and
/// the repository's development client: real client assertions, real DPoP proofs, real tokens.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class EndToEndTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("pit-e2e-");

    [Fact]
    public async Task Submit_a_folder_wait_sync_then_resume_after_more_and_nothing_is_missed_or_repeated()
    {
        await using var server = await TestServer.StartAsync();
        var patients = RealPit.CopyExamples(_folder.FullName);

        var submit = await Pit(server, "submit", patients, "--wait");
        var firstSync = await Pit(server, "sync", "--out", "feed.ndjson", "--count", "4");

        Assert.True(submit.ExitCode == 0, submit.ToString());
        Assert.Matches(@"processed\s*│\s*6", submit.Out);
        Assert.True(firstSync.ExitCode == 0, firstSync.ToString());
        Assert.Equal(6, Feed().Count);

        // One Patient changes, one is new, four are resubmitted unchanged (no new versions for those).
        var changed = JsonNode.Parse(File.ReadAllText(Path.Combine(patients, "emil-berg.json")))!;
        changed["telecom"] = new JsonArray { new JsonObject { ["system"] = "phone", ["value"] = "+4799887766", ["use"] = "mobile" } };
        File.WriteAllText(Path.Combine(patients, "emil-berg.json"), changed.ToJsonString());
        var added = JsonNode.Parse(File.ReadAllText(Path.Combine(patients, "magnus-strand.json")))!;
        added["identifier"]![0]!["value"] = "21858412312";
        added["name"]![0]!["given"] = new JsonArray("Jonas");
        File.WriteAllText(Path.Combine(patients, "more.ndjson"), added.ToJsonString() + "\n");
        var resubmit = await Pit(server, "submit", patients, "--wait");
        var secondSync = await Pit(server, "sync", "--out", "feed.ndjson", "--count", "4");
        var thirdSync = await Pit(server, "sync", "--out", "feed.ndjson");

        Assert.True(resubmit.ExitCode == 0, resubmit.ToString());
        Assert.True(secondSync.ExitCode == 0, secondSync.ToString());
        Assert.Contains("Appended 2 ", secondSync.Out, StringComparison.Ordinal);
        Assert.Contains("Appended 0 ", thirdSync.Out, StringComparison.Ordinal);
        var feed = Feed();
        Assert.Equal(8, feed.Count);
        Assert.Equal(feed.Count, feed.Select(p => p.Id + "/" + p.Version).Distinct().Count());
        Assert.Equal(7, feed.Select(p => p.Id).Distinct().Count());
        Assert.Contains(feed, p => p.Version == "2");
        Assert.Equal(feed.OrderBy(p => DateTimeOffset.Parse(p.LastUpdated, System.Globalization.CultureInfo.InvariantCulture)).Select(p => p.Id + p.Version), feed.Select(p => p.Id + p.Version));
    }

    [Fact]
    public async Task A_server_that_requires_DPoP_nonces_is_answered_and_the_stand_ins_token_nonce_too()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Auth:DPoP:RequireNonce"] = "true" });

        var submit = await Pit(server, "submit", RealPit.CopyExamples(_folder.FullName));
        var search = await Pit(server, "search", "--count", "2");

        Assert.True(submit.ExitCode == 0, submit.ToString());
        Assert.True(search.ExitCode == 0, search.ToString());
        Assert.Contains("Ingrid Solberg", search.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Library_reads_back_what_it_submitted_and_search_follows_cursors()
    {
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Auth:DPoP:RequireNonce"] = "true" });
        using var client = PitClient.Create(await RealPit.ClientOptions(server));

        var statuses = new List<SubmissionStatus>();
        foreach (var file in Directory.EnumerateFiles(RealPit.ExamplesFolder(), "*.json"))
        {
            var url = await client.SubmitPatientJsonAsync(await File.ReadAllTextAsync(file));
            statuses.Add(await client.WaitForSubmissionAsync(url, TimeSpan.FromMilliseconds(100)));
        }

        var pages = await client.SearchPagesAsync(new PatientSearch { Count = 2, Sort = PatientSort.LastUpdatedAscending }).ToListAsync();
        var read = await client.ReadPatientAsync(statuses[0].PatientId!);

        Assert.All(statuses, s => Assert.Equal(SubmissionState.Completed, s.State));
        Assert.Equal(3, pages.Count);
        Assert.All(pages.SkipLast(1), p => Assert.Contains("cursor=", p.NextLink!.Query, StringComparison.Ordinal));
        Assert.Equal(statuses.Select(s => s.PatientId).Order(StringComparer.Ordinal), pages.SelectMany(p => p.Entries).Select(e => e.Id).Order(StringComparer.Ordinal));
        Assert.Equal(statuses[0].PatientId, read.Id);
    }

    [Fact]
    public async Task Token_shows_decoded_claims_bound_to_the_key_and_never_the_raw_token_unless_asked()
    {
        await using var server = await TestServer.StartAsync();

        var decoded = await Pit(server, "token");
        var raw = await Pit(server, "token", "--raw");

        Assert.True(decoded.ExitCode == 0, decoded.ToString());
        Assert.Contains("\"client_id\": \"pit-dev-client\"", decoded.Out, StringComparison.Ordinal);
        Assert.Contains("orgnr_parent", decoded.Out, StringComparison.Ordinal);
        Assert.Contains("cnf.jkt matches", decoded.Out, StringComparison.Ordinal);
        var token = raw.Out.Trim();
        Assert.Equal(3, token.Split('.').Length);
        Assert.DoesNotContain(token, decoded.Out, StringComparison.Ordinal);
        Assert.Equal("at+jwt", new JsonWebToken(token).Typ);
    }

    [Fact]
    public async Task An_invalid_patient_is_shown_with_the_servers_OperationOutcome_and_exit_code_3()
    {
        await using var server = await TestServer.StartAsync();
        var folder = Directory.CreateDirectory(Path.Combine(_folder.FullName, "bad")).FullName;
        var patient = JsonNode.Parse(File.ReadAllText(Path.Combine(RealPit.ExamplesFolder(), "ingrid-solberg.json")))!;
        patient["identifier"]![0]!["value"] = "14838541242"; // wrong control digit
        File.WriteAllText(Path.Combine(folder, "wrong-control-digit.json"), patient.ToJsonString());

        var run = await Pit(server, "submit", folder);

        Assert.True(run.ExitCode == 3, run.ToString());
        Assert.Contains("wrong-control-digit.json: refused with 400 BadRequest", run.Error, StringComparison.Ordinal);
        Assert.Contains("identifier", run.Error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_token_without_the_write_scope_is_refused_with_403_and_exit_code_5()
    {
        await using var server = await TestServer.StartAsync();

        var run = await Pit(server, "--scope", "nhn:pit/api.read", "submit", RealPit.CopyExamples(_folder.FullName));
        var search = await Pit(server, "--scope", "nhn:pit/api.read", "search");

        Assert.True(run.ExitCode == 5, run.ToString());
        Assert.Contains("refused with 403 Forbidden", run.Error, StringComparison.Ordinal);
        Assert.Contains("insufficient_scope", run.Error + run.Out, StringComparison.Ordinal);
        Assert.True(search.ExitCode == 0, search.ToString());
    }

    [Fact]
    public async Task A_token_from_another_issuer_is_refused_with_401_and_exit_code_4()
    {
        await using var server = await TestServer.StartAsync();
        await using var other = await TestServer.StartAsync();

        // Tokens from the other server's stand-in: right shape, wrong issuer and key for this server.
        var run = await CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server, RealPit.Authority(other)), "search"]);

        Assert.True(run.ExitCode == 4, run.ToString());
        Assert.Contains("Error 401 Unauthorized: Not authenticated", run.Error, StringComparison.Ordinal);
        Assert.Contains("WWW-Authenticate: DPoP error=\"invalid_token\"", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unregistered_client_key_is_refused_by_the_token_endpoint_with_exit_code_4()
    {
        await using var server = await TestServer.StartAsync();
        File.WriteAllText(Path.Combine(_folder.FullName, "stranger.jwk.json"), TestKeys.RsaPrivateJwk());

        var run = await CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server, keyFile: "stranger.jwk.json"), "search"]);

        Assert.True(run.ExitCode == 4, run.ToString());
        Assert.Contains("Could not get an access token", run.Error, StringComparison.Ordinal);
        Assert.Contains("invalid_client", run.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dev_mode_finds_the_development_client_key_from_inside_the_repository()
    {
        await using var server = await TestServer.StartAsync();
        var insideRepository = Path.Combine(RealPit.RepositoryRoot(), "examples");

        // --dev supplies client id and key; only the address differs from localhost:5080 in a test.
        var run = await CliRun.RunAsync(insideRepository, ["--dev", "--base-url", server.BaseAddress.AbsoluteUri, "--authority", RealPit.Authority(server).AbsoluteUri, "search"]);

        Assert.True(run.ExitCode == 0, run.ToString());
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

    private Task<CliRun> Pit(TestServer server, params string[] args) =>
        CliRun.RunAsync(_folder.FullName, [.. RealPit.Connection(server), .. args]);

    private List<(string Id, string Version, string LastUpdated)> Feed() =>
        [.. File.ReadAllLines(Path.Combine(_folder.FullName, "feed.ndjson"))
            .Where(l => l.Length > 0)
            .Select(l => JsonNode.Parse(l)!)
            .Select(p => (p["id"]!.GetValue<string>(), p["meta"]!["versionId"]!.GetValue<string>(), p["meta"]!["lastUpdated"]!.GetValue<string>()))];
}

/// <summary>End-to-end tests start real servers: run them one at a time on a small machine.</summary>
[CollectionDefinition(Name)]
public sealed class EndToEndCollection
{
    public const string Name = "End to end";
}
