using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace Pit.Server.Telemetry;

/// <summary>Options of section <c>Pit:Telemetry:Prometheus</c>.</summary>
internal sealed class PrometheusOptions
{
    /// <summary>Serve a Prometheus scrape endpoint (default false).</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// The management address the server additionally listens on, and the only one that answers scrapes (default
    /// <c>http://127.0.0.1:9464</c>: loopback only). Never the public API address.
    /// </summary>
    public string Url { get; set; } = "http://127.0.0.1:9464";

    /// <summary>The scrape path on the management address (default <c>/metrics</c>).</summary>
    public string Path { get; set; } = "/metrics";

    internal int Port => new Uri(Url).Port;
}

/// <summary>
/// The Prometheus scrape endpoint, on its own management port only: requests that reach the public API address
/// never see it (the check is on the socket's local port, not on the Host header), and the management port answers
/// nothing but the scrape path and <c>/health/*</c>.
/// </summary>
internal static class PrometheusEndpoint
{
    private const string Section = "Pit:Telemetry:Prometheus";

    public static WebApplicationBuilder AddPitPrometheus(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<PrometheusOptions>().Bind(builder.Configuration.GetSection(Section))
            .Validate(o => !o.Enabled || (Uri.TryCreate(o.Url, UriKind.Absolute, out var uri) && uri.Scheme == "http" && uri.Port > 0 && uri.AbsolutePath == "/"),
                $"{Section}:Url must be an http URL with an explicit port and no path, e.g. http://127.0.0.1:9464.")
            .Validate(o => o.Path.StartsWith('/'), $"{Section}:Path must start with '/'.")
            .ValidateOnStart();
        var settings = builder.Configuration.GetSection(Section).Get<PrometheusOptions>() ?? new PrometheusOptions();
        if (!settings.Enabled || !Uri.TryCreate(settings.Url, UriKind.Absolute, out _))
        {
            return builder;
        }

        builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddPrometheusExporter());
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, string.Join(';', ApiUrls(builder.Configuration).Append(settings.Url)));
        return builder;
    }

    public static WebApplication UsePitPrometheus(this WebApplication app)
    {
        var settings = app.Services.GetRequiredService<IOptions<PrometheusOptions>>().Value;
        if (!settings.Enabled)
        {
            return app;
        }

        var port = settings.Port;
        var path = new PathString(settings.Path);
        app.UseOpenTelemetryPrometheusScrapingEndpoint(c => c.Connection.LocalPort == port && c.Request.Path == path);
        app.UseWhen(c => c.Connection.LocalPort == port && !c.Request.Path.StartsWithSegments("/health"), management => management.Run(c =>
        {
            c.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }));
        return app;
    }

    /// <summary>The API's own addresses as Kestrel would have chosen them from configuration.</summary>
    private static IEnumerable<string> ApiUrls(IConfiguration configuration)
    {
        var urls = configuration[WebHostDefaults.ServerUrlsKey];
        if (!string.IsNullOrWhiteSpace(urls))
        {
            return urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }

        var ports = Ports(configuration[WebHostDefaults.HttpPortsKey], "http").Concat(Ports(configuration[WebHostDefaults.HttpsPortsKey], "https")).ToList();
        return ports.Count > 0 ? ports : ["http://localhost:5000"];
    }

    private static IEnumerable<string> Ports(string? ports, string scheme) =>
        (ports ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => $"{scheme}://*:{p}");
}
