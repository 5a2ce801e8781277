using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Audit;
using Pit.Server.Operability;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Tests.Infrastructure;
using Pit.TestSupport;

namespace Pit.Server.Tests.Operability;

/// <summary>What an operator reads in the log: the start-up line, one access line per request, refusal reasons, outages.</summary>
public sealed class OperatorLogTests
{
    private const int StartupEvent = 50;
    private const int AccessEvent = 51;
    private const int OutageStartedEvent = 60;
    private const int OutageEndedEvent = 61;
    private const int RefusalEvent = 70;

    [Fact]
    public async Task Every_request_writes_one_access_line_with_route_template_status_duration_client_and_organisation_but_no_query_or_identity_number()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(configure: logs.AddTo);
        using var client = server.CreateClient();
        using var anonymous = server.CreateAnonymousClient();
        var fnr = TestPatients.NewFnr();

        var requests = new (HttpClient Client, HttpMethod Method, string Url, HttpStatusCode Status, string Route)[]
        {
            (client, HttpMethod.Get, $"v1/Patient?identifier={fnr}&_count=5", HttpStatusCode.BadRequest, "/v1/Patient"),
            (client, HttpMethod.Get, $"v1/Patient/{fnr}", HttpStatusCode.NotFound, "/v1/Patient/{id}"),
            (client, HttpMethod.Post, "v1/Patient", HttpStatusCode.Accepted, "/v1/Patient"),
            (anonymous, HttpMethod.Get, "v1/Patient", HttpStatusCode.Unauthorized, "/v1/Patient"),
            (anonymous, HttpMethod.Get, $"no/such/{fnr}", HttpStatusCode.NotFound, "unmatched"),
        };
        var ids = new List<string>();
        foreach (var (http, method, url, status, _) in requests)
        {
            var id = "access-" + Guid.NewGuid().ToString("N");
            ids.Add(id);
            using var request = new HttpRequestMessage(method, url);
            request.Headers.Add(CorrelationIds.HeaderName, id);
            if (method == HttpMethod.Post)
            {
                request.Content = TestPatients.Content(TestPatients.Json(fnr));
            }

            using var response = await http.SendAsync(request);
            Assert.Equal(status, response.StatusCode);
        }

        for (var i = 0; i < requests.Length; i++)
        {
            var lines = logs.Entries.Where(e => e.EventId == AccessEvent && e.ScopeValues.GetValueOrDefault("CorrelationId") == ids[i]).ToList();
            var line = Assert.Single(lines);
            Assert.Equal(AccessLog.Category, line.Category);
            Assert.Equal(LogLevel.Information, line.Level);
            Assert.Equal(requests[i].Method.Method, line.Values["Method"]);
            Assert.Equal(requests[i].Route, line.Values["Route"]);
            Assert.Equal(((int)requests[i].Status).ToString(CultureInfo.InvariantCulture), line.Values["StatusCode"]);
            Assert.True(double.Parse(line.Values["DurationMs"]!, CultureInfo.InvariantCulture) >= 0);
            var authenticated = requests[i].Client == client;
            Assert.Equal(authenticated ? "pit-test-client" : null, line.Values["ClientId"]);
            Assert.Equal(authenticated ? TestServer.DefaultOrganisation : null, line.Values["Organisation"]);
            Assert.DoesNotContain(fnr, line.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("?", line.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("_count", line.Text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task The_start_up_line_names_the_version_store_schema_version_stand_in_and_public_base_url()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:PublicBaseUrl"] = "https://pit.example.no" }, configure: logs.AddTo);

        var line = Assert.Single(logs.Entries, e => e.EventId == StartupEvent);
        var version = typeof(PitApp).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Equal(version, line.Values["Version"]);
        Assert.Equal("Sqlite", line.Values["StoreEngine"]);
        Assert.Equal(SqliteSchema.Version.ToString(CultureInfo.InvariantCulture), line.Values["SchemaVersion"]);
        Assert.Equal("True", line.Values["StandInEnabled"]);
        Assert.Equal("https://pit.example.no", line.Values["PublicBaseUrl"]);
        Assert.DoesNotContain("Data Source", line.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_auth_refusal_logs_its_reason_code_and_never_the_token_or_proof()
    {
        var logs = new CapturingLoggerProvider();
        await using var server = await TestServer.StartAsync(configure: logs.AddTo);
        var credentials = new CredentialRecorder(server);
        using var http = server.CreateAnonymousClient();
        using var key = DpopKey.CreateEcP256();
        var url = new Uri(server.BaseAddress, "v1/Patient");
        var valid = credentials.Token(key);

        async Task<string> SendAsync(string token, string proof, HttpStatusCode expected)
        {
            var id = "refusal-" + Guid.NewGuid().ToString("N");
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.TryAddWithoutValidation("Authorization", "DPoP " + token);
            request.Headers.TryAddWithoutValidation("DPoP", credentials.Remember(proof));
            request.Headers.Add(CorrelationIds.HeaderName, id);
            using var response = await http.SendAsync(request);
            Assert.Equal(expected, response.StatusCode);
            return id;
        }

        async Task<string> RefusalOf(string token, string proof, HttpStatusCode expected)
        {
            var id = await SendAsync(token, proof, expected);
            var refusal = Assert.Single(logs.Entries, e => e.EventId == RefusalEvent && e.ScopeValues.GetValueOrDefault("CorrelationId") == id);
            Assert.Equal(LogLevel.Information, refusal.Level);
            return refusal.Values["Reason"]!;
        }

        string Proof(string token) => key.CreateProof(HttpMethod.Get, url, token);

        var replayed = Proof(valid);
        await SendAsync(valid, replayed, HttpStatusCode.OK);
        Assert.Equal("proof_replayed", await RefusalOf(valid, replayed, HttpStatusCode.Unauthorized));
        var expired = credentials.Token(key, new AccessTokenSpec { IssuedAt = DateTimeOffset.UtcNow.AddHours(-2) });
        Assert.Equal("token_expired", await RefusalOf(expired, Proof(expired), HttpStatusCode.Unauthorized));
        var writeOnly = credentials.Token(key, new AccessTokenSpec { Scopes = [AccessTokenMinter.WriteScope] });
        Assert.Equal("insufficient_scope", await RefusalOf(writeOnly, Proof(writeOnly), HttpStatusCode.Forbidden));
        var otherAudience = credentials.Token(key, new AccessTokenSpec { Audience = "someone-else" });
        Assert.Equal("token_audience", await RefusalOf(otherAudience, Proof(otherAudience), HttpStatusCode.Unauthorized));
        var malformed = credentials.Remember("not-a-token");
        Assert.Equal("token_malformed", await RefusalOf(malformed, Proof(malformed), HttpStatusCode.Unauthorized));

        var text = logs.AllText();
        Assert.DoesNotContain("Exception", string.Join(' ', logs.Entries.Where(e => e.EventId == RefusalEvent).Select(e => e.Values["Reason"])), StringComparison.Ordinal);
        foreach (var secret in credentials.Secrets.Where(s => s.Length > 20))
        {
            Assert.DoesNotContain(secret.Split('.').Last(), text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_store_outage_logs_one_warning_when_it_starts_and_one_when_it_ends_not_a_stack_trace_per_retry()
    {
        var logs = new CapturingLoggerProvider();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var outage = new StoreOutage { Down = true };
        await using var server = await TestServer.StartAsync(configure: b =>
        {
            logs.AddTo(b);
            b.Services.AddSingleton<TimeProvider>(time);
            b.Services.DecorateStore<ISubmissionQueueStore>(outage.Queue);
            b.Services.DecorateStore<IAuditStore>(outage.Audit);
        });
        var audit = server.Services.GetRequiredService<AuditTrail>();
        audit.Record(new AuditEntry(1, "read", "pit-test-client", TestServer.DefaultOrganisation, null, null, null, 200, "ok"));

        // The retry loops wait on the fake clock: advancing it lets each retry as often as the test wants.
        await AdvanceUntilAsync(time, () => outage.FailedApplies >= 6 && outage.FailedAuditWrites >= 6);
        outage.Down = false;
        await AdvanceUntilAsync(time, () => audit.Backlog == 0 && Count(OutageEndedEvent, nameof(SubmissionProcessor)) == 1 && Count(OutageEndedEvent, nameof(AuditTrail)) == 1);

        int Count(int eventId, string category) =>
            logs.Entries.Count(e => e.EventId == eventId && e.Category.EndsWith(category, StringComparison.Ordinal));

        foreach (var component in new[] { nameof(SubmissionProcessor), nameof(AuditTrail) })
        {
            Assert.Equal(1, Count(OutageStartedEvent, component));
            Assert.Equal(1, Count(OutageEndedEvent, component));
            var started = logs.Entries.Single(e => e.EventId == OutageStartedEvent && e.Category.EndsWith(component, StringComparison.Ordinal));
            Assert.Equal(LogLevel.Warning, started.Level);
            Assert.Equal("IOException", started.Values["ExceptionType"]);
            Assert.Equal("simulated store outage", started.Values["ExceptionMessage"]);
            Assert.Null(started.Exception);
            var ended = logs.Entries.Single(e => e.EventId == OutageEndedEvent && e.Category.EndsWith(component, StringComparison.Ordinal));
            Assert.Equal(LogLevel.Warning, ended.Level);
            Assert.True(int.Parse(ended.Values["Failures"]!, CultureInfo.InvariantCulture) >= 6);
        }

        // The retries themselves are there for whoever turns on Debug; nothing at Warning or above carries a stack trace.
        Assert.True(logs.Entries.Count(e => e.Level == LogLevel.Debug && e.EventId == 62) >= 10);
        Assert.DoesNotContain(logs.Entries, e => e.Level >= LogLevel.Warning && e.Exception is not null);
    }

    [Fact]
    public void An_outage_warning_names_a_database_error_that_may_quote_data_by_its_SQLSTATE_only()
    {
        var fnr = TestPatients.NewFnr();

        var quoting = StoreOutageLog.MessageOf(new Npgsql.PostgresException($"invalid input syntax for type uuid: \"{fnr}\"", "ERROR", "ERROR", "22P02"));
        var shutdown = StoreOutageLog.MessageOf(new Npgsql.PostgresException("terminating connection due to administrator command", "FATAL", "FATAL", "57P01"));

        Assert.Equal("SQLSTATE 22P02", quoting);
        Assert.Contains("terminating connection due to administrator command", shutdown, StringComparison.Ordinal);
        Assert.Equal("simulated store outage", StoreOutageLog.MessageOf(new IOException("simulated store outage")));
    }

    [Fact]
    public async Task Outside_Development_the_server_writes_JSON_lines_with_the_correlation_id_and_quiet_ASP_NET_Core()
    {
        var data = Directory.CreateTempSubdirectory("pit-jsonlog-");
        var server = typeof(PitApp).Assembly.Location;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, WorkingDirectory = Path.GetDirectoryName(server)! };
        foreach (var arg in new[]
        {
            server, "--environment=Production", "--urls=http://127.0.0.1:0", "--Pit:Auth:Authority=https://helseid-sts.test.nhn.no",
            "--Pit:PublicBaseUrl=https://pit.example.no",
            $"--Pit:Storage:ConnectionString=Data Source={Path.Combine(data.FullName, "pit.db")}",
        })
        {
            info.ArgumentList.Add(arg);
        }

        var lines = new List<string>();
        using var process = Process.Start(info)!;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string? address = null;
            var started = false;
            while ((address is null || !started) && await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                lines.Add(line);
                using var json = JsonDocument.Parse(line);
                if (json.RootElement.GetProperty("EventId").GetInt32() == StartupEvent)
                {
                    var state = json.RootElement.GetProperty("State");
                    Assert.Equal("Sqlite", state.GetProperty("StoreEngine").GetString());
                    Assert.Equal(JsonValueKind.False, state.GetProperty("StandInEnabled").ValueKind);
                    Assert.Equal("https://pit.example.no", state.GetProperty("PublicBaseUrl").GetString());
                    started = true;
                }

                if (json.RootElement.GetProperty("Category").GetString() == "Microsoft.Hosting.Lifetime"
                    && json.RootElement.GetProperty("State").TryGetProperty("address", out var listening))
                {
                    address = listening.GetString();
                }
            }

            Assert.True(address is not null && started, "No address or start-up line: " + string.Join('\n', lines));
            using var http = new HttpClient { BaseAddress = new Uri(address!) };
            var id = "json-" + Guid.NewGuid().ToString("N");
            using var request = new HttpRequestMessage(HttpMethod.Get, "v1/metadata");
            request.Headers.Add(CorrelationIds.HeaderName, id);
            using (var response = await http.SendAsync(request, timeout.Token))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            JsonElement access = default;
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                lines.Add(line);
                using var json = JsonDocument.Parse(line);
                if (json.RootElement.GetProperty("EventId").GetInt32() == AccessEvent)
                {
                    access = json.RootElement.Clone();
                    break;
                }
            }

            Assert.Equal(JsonValueKind.Object, access.ValueKind);
            Assert.Equal("Information", access.GetProperty("LogLevel").GetString());
            Assert.True(DateTimeOffset.TryParse(access.GetProperty("Timestamp").GetString(), CultureInfo.InvariantCulture, out _));
            Assert.Equal("/v1/metadata", access.GetProperty("State").GetProperty("Route").GetString());
            Assert.Contains(access.GetProperty("Scopes").EnumerateArray(),
                s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("CorrelationId", out var c) && c.GetString() == id);

            // One line per request: nothing else about this request (no "Request starting/finished" from the host).
            Assert.Single(lines, l => l.Contains(id, StringComparison.Ordinal));
            Assert.DoesNotContain(lines, l => l.Contains("\"Category\":\"Microsoft.AspNetCore", StringComparison.Ordinal));
            Assert.True(lines.Count(l => l.Contains($"\"EventId\":{StartupEvent},", StringComparison.Ordinal)) == 1, string.Join('\n', lines));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            data.Delete(recursive: true);
        }
    }

    private static async Task AdvanceUntilAsync(FakeTimeProvider time, Func<bool> done)
    {
        var deadline = Stopwatch.StartNew();
        while (!done())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "The retry loops did not get there.");
            time.Advance(TimeSpan.FromSeconds(31));
            await Task.Delay(20);
        }
    }
}
