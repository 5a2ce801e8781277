using System.Text.Json;
using System.Text.RegularExpressions;
using Pit.Server.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace Pit.Server.Tests.Operability;

/// <summary>
/// The shipped Prometheus alert rules and Grafana dashboard (deploy/): valid for promtool, their unit tests pass, they
/// name only metrics the real server exports, and the alert table in docs/OPERATIONS.md names every alert.
/// </summary>
public sealed partial class MonitoringArtifactsTests
{
    // Series Prometheus makes itself for every scrape target, not the server.
    private static readonly HashSet<string> PrometheusOwn = new(StringComparer.Ordinal) { "up" };

    private static readonly HashSet<string> PromQlKeywords = new(StringComparer.Ordinal) { "and", "or", "unless", "bool", "offset" };

    private static string Rules => Path.Combine(ServerCommandLine.RepositoryRoot(), "deploy", "prometheus", "pit-alerts.yml");

    private static string RuleTests => Path.Combine(ServerCommandLine.RepositoryRoot(), "deploy", "prometheus", "pit-alerts.test.yml");

    private static string Dashboard => Path.Combine(ServerCommandLine.RepositoryRoot(), "deploy", "grafana", "pit-dashboard.json");

    [Fact]
    public async Task Promtool_accepts_the_alert_rules()
    {
        var (exitCode, output) = await PromtoolAsync("check", "rules", Rules);

        Assert.True(exitCode == 0, output);
        Assert.Matches(@"SUCCESS: \d+ rules found", output);
    }

    [Fact]
    public async Task The_alert_rules_pass_their_promtool_unit_tests()
    {
        var (exitCode, output) = await PromtoolAsync("test", "rules", RuleTests);

        Assert.True(exitCode == 0, output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_metric_the_alert_rules_and_the_dashboard_name_is_in_the_real_servers_scrape()
    {
        var exported = SeriesNames(await MetricsEndpointTests.ScrapeAfterTrafficAsync());
        var inRules = MetricsInRules();
        var inDashboard = DashboardExpressions().SelectMany(MetricNames).ToHashSet(StringComparer.Ordinal);

        // The dashboard shows what operators asked for; the name extraction works (it finds them).
        Assert.Superset(
            new HashSet<string>(StringComparer.Ordinal)
            {
                "pit_requests_total", "http_server_request_duration_seconds_bucket", "pit_auth_failures_total", "pit_queue_depth",
                "pit_queue_oldest_age_seconds", "pit_submissions_visibility_lag_seconds_bucket", "pit_rate_limit_rejections_total",
                "pit_dpop_replay_cache_entries", "pit_audit_backlog", "pit_feed_waiters",
            },
            inDashboard);
        Assert.True(inRules.Count >= 10, string.Join(", ", inRules));
        foreach (var name in inRules.Concat(inDashboard).Where(n => !PrometheusOwn.Contains(n) && !IsPostgresOnly(n)))
        {
            Assert.True(exported.Contains(name), $"{name} is named in deploy/ but the server exports no such series.");
        }
    }

    /// <summary>Npgsql's metrics: only a server on PostgreSQL exports them (<see cref="PostgresMonitoringArtifactsTests"/>).</summary>
    internal static bool IsPostgresOnly(string metric) => metric.StartsWith("db_client_", StringComparison.Ordinal);

    /// <summary>Every metric name the alert rules' expressions use.</summary>
    internal static HashSet<string> MetricsInRules() =>
        AlertExpressions().SelectMany(a => MetricNames(a.Expr)).ToHashSet(StringComparer.Ordinal);

    /// <summary>Every series name in a Prometheus text scrape.</summary>
    internal static HashSet<string> SeriesNames(string scrape) =>
        scrape.Split('\n')
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l[..l.IndexOfAny(['{', ' '])])
            .ToHashSet(StringComparer.Ordinal);

    [Fact]
    public void The_alert_table_in_OPERATIONS_md_names_every_alert_of_the_rules_file()
    {
        var operations = File.ReadAllText(Path.Combine(ServerCommandLine.RepositoryRoot(), "docs", "OPERATIONS.md"));
        var alerts = AlertExpressions().Select(a => a.Alert).ToList();

        Assert.True(alerts.Count >= 10);
        Assert.Equal(alerts.Count, alerts.Distinct(StringComparer.Ordinal).Count());
        foreach (var alert in alerts)
        {
            Assert.Contains($"`{alert}`", operations, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Metric_names_are_read_from_PromQL_without_functions_labels_or_ranges()
    {
        var names = MetricNames("""histogram_quantile(0.99, sum by (le, http_route) (rate(a_bucket{http_route=~"/v1/.*", x="y or z"}[$__rate_interval]))) / ignoring(le) b_total > 0.5 or max by (instance) (c) >= on (instance) d""");

        Assert.Equal(["a_bucket", "b_total", "c", "d"], names);
    }

    /// <summary>The metric names of one PromQL expression: what is left once strings, label matchers, ranges, grouping clauses, functions and keywords are gone.</summary>
    internal static List<string> MetricNames(string expr)
    {
        var text = QuotedString().Replace(expr, "\"\"");
        text = LabelMatchers().Replace(text, " ");
        text = Ranges().Replace(text, " ");
        text = Grouping().Replace(text, " ");
        return Identifier().Matches(text)
            .Where(m => !text[(m.Index + m.Length)..].TrimStart().StartsWith('(') && !PromQlKeywords.Contains(m.Value))
            .Select(m => m.Value)
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }

    private static IEnumerable<(string Alert, string Expr)> AlertExpressions()
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(Rules))
        {
            yaml.Load(reader);
        }

        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        foreach (var group in ((YamlSequenceNode)root["groups"]).Cast<YamlMappingNode>())
        {
            foreach (var rule in ((YamlSequenceNode)group["rules"]).Cast<YamlMappingNode>())
            {
                yield return (((YamlScalarNode)rule["alert"]).Value!, ((YamlScalarNode)rule["expr"]).Value!);
            }
        }
    }

    private static IEnumerable<string> DashboardExpressions()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var expressions = new List<string>();
        foreach (var panel in dashboard.RootElement.GetProperty("panels").EnumerateArray())
        {
            if (panel.TryGetProperty("targets", out var targets))
            {
                expressions.AddRange(targets.EnumerateArray().Select(t => t.GetProperty("expr").GetString()!));
            }
        }

        foreach (var variable in dashboard.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.GetProperty("type").GetString() == "query")
            {
                // label_values(metric, label): the metric must exist for the variable to list anything.
                var query = variable.GetProperty("query").GetProperty("query").GetString()!;
                expressions.Add(LabelValues().Match(query).Groups[1].Value);
            }
        }

        Assert.NotEmpty(expressions);
        return expressions;
    }

    private static async Task<(int ExitCode, string Output)> PromtoolAsync(params string[] args)
    {
        // scripts/test.sh installs Debian's prometheus package (it ships promtool) when it is missing.
        var result = await ServerCommandLine.RunProgramAsync("promtool", Environment.CurrentDirectory, args);
        return (result.ExitCode, result.Output + result.Errors);
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"")]
    private static partial Regex QuotedString();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Ranges();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex Grouping();

    [GeneratedRegex(@"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")]
    private static partial Regex LabelValues();
}

/// <summary>The rules about PostgreSQL name metrics that a server on PostgreSQL really exports (Npgsql's own).</summary>
public sealed class PostgresMonitoringArtifactsTests(PostgresServer database) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Every_metric_the_alert_rules_name_is_in_the_scrape_of_a_server_on_PostgreSQL()
    {
        var scrape = await MetricsEndpointTests.ScrapeAfterTrafficAsync(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = await database.CreateDatabaseAsync(),
        });

        var exported = MonitoringArtifactsTests.SeriesNames(scrape);
        var inRules = MonitoringArtifactsTests.MetricsInRules();

        Assert.Contains(inRules, MonitoringArtifactsTests.IsPostgresOnly);
        // The replay-cache gauge belongs to the in-memory cache (one instance); PostgreSQL keeps proofs in a table and
        // has no such gauge (docs/OPERATIONS.md says so in the alert table).
        foreach (var name in inRules.Where(n => n is not ("up" or "pit_dpop_replay_cache_entries" or "pit_dpop_replay_cache_capacity")))
        {
            Assert.True(exported.Contains(name), $"{name} is named in pit-alerts.yml but a server on PostgreSQL exports no such series.");
        }
    }
}
