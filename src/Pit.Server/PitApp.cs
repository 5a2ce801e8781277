using Microsoft.Extensions.Options;
using Pit.Server.Auth;
using Pit.Server.Feed;
using Pit.Server.Fhir;
using Pit.Server.Fhir.OpenApi;
using Pit.Server.Operability;
using Pit.Server.Patients;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Telemetry;

namespace Pit.Server;

/// <summary>Builds the PIT web application: every slice registers its own services and endpoints.</summary>
internal static class PitApp
{
    /// <summary>Creates the application; <paramref name="configure"/> lets hosts (tests, tools) adjust the builder.</summary>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddPitTelemetry(builder.Configuration);
        builder.Services.AddPitFhir(builder.Configuration);
        builder.Services.AddPitOpenApi();
        builder.Services.AddPitStorage(builder.Configuration, builder.Environment);
        builder.Services.AddPitProcessing(builder.Configuration);
        builder.Services.AddPitPatients(builder.Configuration);
        builder.Services.AddPitFeed(builder.Configuration);
        builder.Services.AddPitAuth(builder.Configuration, builder.Environment);
        builder.AddPitOperability();
        configure?.Invoke(builder);

        var app = builder.Build();
        ValidateSettings(app.Services);
        app.UsePitOperability();
        app.UsePitFhirErrors();
        app.UsePitForwardedHeaders();
        app.UsePitAuth();
        app.UsePitRateLimiting();
        app.MapPitHealth();
        app.MapPitMetadata();
        app.MapPitPatients();
        app.MapPitReference();
        return app;
    }

    /// <summary>
    /// The store alone, for the commands beside the server (<c>migrate</c>, <c>audit-export</c>): the same
    /// configuration sources as the server, but only <c>Pit:Storage</c>, <c>Pit:Secrets</c> and <c>Pit:Audit</c> are
    /// registered, so only they are needed and checked. Nothing is started.
    /// </summary>
    public static WebApplication CreateStoreTool(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddPitStorage(builder.Configuration, builder.Environment);
        configure?.Invoke(builder);
        var app = builder.Build();
        ValidateSettings(app.Services);
        return app;
    }

    /// <summary>
    /// Runs every start-up validation (<c>ValidateOnStart</c>) now, before anything reads an option or the host
    /// starts: a bad setting then fails with its <see cref="OptionsValidationException"/>
    /// alone, which the command line turns into one line naming the key, rather than with a host log and a stack trace.
    /// </summary>
    private static void ValidateSettings(IServiceProvider services)
    {
        try
        {
            services.GetService<IStartupValidator>()?.Validate();
        }
        catch (AggregateException ex) when (ex.InnerExceptions.All(e => e is OptionsValidationException))
        {
            // Several option types at fault (or one seen through several): one exception with each message once.
            var first = (OptionsValidationException)ex.InnerExceptions[0];
            throw new OptionsValidationException(first.OptionsName, first.OptionsType,
                ex.InnerExceptions.SelectMany(e => ((OptionsValidationException)e).Failures).Distinct());
        }
    }
}
