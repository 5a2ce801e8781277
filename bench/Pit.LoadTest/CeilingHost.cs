using Hl7.Fhir.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pit.Server.Auth;
using Pit.Server.Fhir;
using Pit.Server.Operability;
using Pit.Server.Telemetry;
using Pit.TestSupport;

namespace Pit.LoadTest;

/// <summary>
/// The ceiling of issue 18: a host with the server's own authentication and authorisation (the same
/// <see cref="PitAuthSetup"/>: JwtBearer with the caching token handler, the DPoP proof check with its replay cache and
/// shares, the read and write policies), its telemetry, correlation ids, access log and FHIR error handling, and
/// endpoints that answer POST with 202 and GET with 200 without reading a body, parsing or touching storage. What the
/// real server does beyond this host is what it spends on FHIR, the queue and the store.
/// </summary>
/// <remarks>
/// The harness starts this assembly as its own process (like the server, so its CPU is measured apart from the
/// harness's), with <see cref="EnvironmentVariable"/> set and the server's command-line settings.
/// </remarks>
public static class CeilingHost
{
    /// <summary>Set (to anything) in the environment of a process that should run as the ceiling host.</summary>
    public const string EnvironmentVariable = "PIT_LOADTEST_CEILING_HOST";

    /// <summary>
    /// Starts the ceiling host as its own process, configured as <see cref="ServerProcess"/> configures the server (its
    /// HelseID stand-in, <paramref name="settings"/>), and waits until it is ready.
    /// </summary>
    public static Task<ServerProcess> StartAsync(string dataDirectory, IDictionary<string, string?> settings) =>
        ServerProcess.StartAsync(typeof(CeilingHost).Assembly.Location, dataDirectory, settings,
            environment: new Dictionary<string, string> { [EnvironmentVariable] = "1" });

    /// <summary>Runs the ceiling host in this process until it is stopped.</summary>
    public static async System.Threading.Tasks.Task RunAsync(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddPitTelemetry(builder.Configuration);
        builder.Services.AddPitFhir(builder.Configuration);
        builder.Services.AddPitAuth(builder.Configuration, builder.Environment);
        builder.Services.AddPitLogRedaction();
        builder.Services.AddPitCorrelationIds();
        builder.Services.AddPitRateLimiting(builder.Configuration);
        builder.Services.AddHealthChecks();

        await using var app = builder.Build();
        app.UsePitAccessLog();
        app.UsePitFhirErrors();
        app.UsePitForwardedHeaders();
        app.UsePitAuth();
        app.UsePitRateLimiting();
        app.MapHealthChecks("/health/ready");

        var json = app.Services.GetRequiredService<FhirJson>();
        var accepted = json.Serialize(Outcomes.Information("Accepted: the ceiling host stores nothing."));
        var emptyPage = json.Serialize(new Bundle { Type = Bundle.BundleType.Searchset, Total = 0 });
        var baseUrl = app.Services.GetRequiredService<PublicBaseUrl>();
        var v1 = app.MapGroup("/v1").NegotiateFhirJson();

        // The caller is resolved as the real endpoints resolve it (PitCaller parameter binding), then nothing else.
        v1.MapPost("/Patient", (HttpContext context, PitCaller caller) =>
        {
            context.Response.Headers.ContentLocation = $"{baseUrl.For(context.Request)}/v1/submissions/{Guid.CreateVersion7():D}";
            return FhirResults.Accepted<OperationOutcome>(accepted);
        }).RequireAuthorization(PitPolicies.Write);
        v1.MapGet("/Patient", (PitCaller caller) => FhirResults.Ok<Bundle>(emptyPage)).RequireAuthorization(PitPolicies.Read);
        await app.RunAsync();
    }
}
