using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.HelseIdStandIn;

namespace Pit.Server.Auth;

/// <summary>
/// HelseID access tokens bound with DPoP (RFC 9449) on JwtBearer, the read/write policies, and the optional local
/// HelseID stand-in.
/// </summary>
internal static class PitAuthSetup
{
    /// <summary>The authentication scheme name; also the <c>Authorization</c> scheme clients use.</summary>
    public const string Scheme = "DPoP";

    public const string ReadScope = "nhn:pit/api.read";
    public const string WriteScope = "nhn:pit/api.write";

    private const string StandInSection = "Pit:Auth:StandIn";

    public static IServiceCollection AddPitAuth(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment)
    {
        services.AddSingleton<IValidateOptions<AccessOptions>, AccessOptionsValidator>();
        services.AddOptions<AccessOptions>().Bind(configuration.GetSection("Pit:Access")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PitAuthOptions>>(new PitAuthOptionsValidator(configuration.GetValue<bool>(StandInSection + ":Enabled")));
        services.AddOptions<PitAuthOptions>().Bind(configuration.GetSection("Pit:Auth")).ValidateOnStart();
        services.AddPitTrustedProxies(environment);

        var standInSection = configuration.GetSection(StandInSection);
        services.AddOptions<StandInOptions>().Bind(standInSection)
            .PostConfigure<IOptions<PitAuthOptions>>((standIn, auth) =>
            {
                standIn.Issuer ??= string.IsNullOrWhiteSpace(auth.Value.Authority) ? null : auth.Value.Authority.TrimEnd('/');
                if (standInSection["Audience"] is null)
                {
                    standIn.Audience = auth.Value.Audience;
                }
            });
        if (standInSection.GetValue<bool>("Enabled"))
        {
            EnsureStandInAllowed(environment, standInSection.Get<StandInOptions>() ?? new StandInOptions());
            services.AddHelseIdStandIn(standInSection);
            services.AddOptions<StandInOptions>().Validate(
                standIn => standIn.Clients.SelectMany(c => c.OrganisationNumbers()).All(OrganisationNumber.IsValid),
                "Pit:Auth:StandIn:Clients: every organisation number (OrgnrParent, OrgnrChild, ChildOrganisations, OrgnrSupplier, Customers) must be 9 digits with a valid mod-11 control digit.");
            services.TryAddSingleton<ITokenEndpointDpopValidator, StandInTokenEndpointDpopValidator>();
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IDpopReplayCache, InMemoryDpopReplayCache>();
        services.TryAddSingleton<DpopReplayShares>();
        services.TryAddSingleton<DpopNonces>();
        services.TryAddSingleton<DpopProofValidator>();
        services.TryAddSingleton<CachingAccessTokenHandler>();
        services.TryAddSingleton<DpopJwtBearerEvents>();
        services.TryAddSingleton<AuthRefusals>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, PitAuthorizationResultHandler>();

        services.AddAuthentication(Scheme).AddJwtBearer(Scheme, _ => { });
        services.AddOptions<JwtBearerOptions>(Scheme).Configure<IOptions<PitAuthOptions>, IOptions<StandInOptions>, IServiceProvider>(
            (jwt, authOptions, standInOptions, provider) => ConfigureJwtBearer(jwt, authOptions.Value, standInOptions.Value.Enabled, provider));

        services.AddAuthorizationBuilder()
            .AddPolicy(PitPolicies.Read, p => p.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(ReadScope), new OrganisationRequirement()))
            .AddPolicy(PitPolicies.Write, p => p.RequireAuthenticatedUser().AddRequirements(new ScopeRequirement(WriteScope), new OrganisationRequirement()));
        return services;
    }

    public static WebApplication UsePitAuth(this WebApplication app)
    {
        var standIn = app.Services.GetRequiredService<IOptions<StandInOptions>>().Value;
        app.UseAuthentication();
        app.UseAuthorization();
        if (standIn.Enabled)
        {
            EnsureStandInAllowed(app.Environment, standIn);
            app.MapHelseIdStandIn();
        }

        return app;
    }

    private static void ConfigureJwtBearer(JwtBearerOptions jwt, PitAuthOptions auth, bool standInEnabled, IServiceProvider provider)
    {
        jwt.MapInboundClaims = false;
        jwt.SaveToken = false;
        jwt.IncludeErrorDetails = false;
        jwt.RefreshOnIssuerKeyNotFound = true;
        jwt.RequireHttpsMetadata = auth.RequireHttpsMetadata;
        jwt.Audience = auth.Audience;
        jwt.EventsType = typeof(DpopJwtBearerEvents);
        jwt.TokenHandlers.Clear();
        jwt.TokenHandlers.Add(auth.CacheValidatedTokens ? provider.GetRequiredService<CachingAccessTokenHandler>() : new JsonWebTokenHandler { MapInboundClaims = false, MaximumTokenSizeInBytes = 16 * 1024 });
        if (standInEnabled)
        {
            jwt.ConfigurationManager = new StandInConfigurationManager(provider.GetRequiredService<StandInIssuer>());
        }
        else
        {
            jwt.Authority = auth.Authority?.TrimEnd('/');
        }

        jwt.TokenValidationParameters = new TokenValidationParameters
        {
            ValidIssuer = standInEnabled ? null : auth.Authority?.TrimEnd('/'),
            ValidateIssuer = true,
            ValidAudience = auth.Audience,
            ValidateAudience = true,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = TimeSpan.FromSeconds(auth.ClockSkewSeconds),
            ValidTypes = ["at+jwt", "JWT"],
            ValidAlgorithms = auth.Algorithms,
            NameClaimType = HelseIdClaims.ClientId,
        };
    }

    // An allow-list: Development, or an environment the stand-in's own setting names (never Production).
    private static void EnsureStandInAllowed(IHostEnvironment environment, StandInOptions standIn)
    {
        var allowed = environment.IsDevelopment()
            || (!environment.IsProduction() && standIn.AllowedEnvironments.Any(e => environment.IsEnvironment(e)));
        if (!allowed)
        {
            throw new OptionsValidationException(StandInSection, typeof(StandInOptions), [
                $"Pit:Auth:StandIn:Enabled is true but the environment is {environment.EnvironmentName}. The local HelseID stand-in issues " +
                "tokens to anyone holding a development key, so it starts only in Development or in an environment named in " +
                "Pit:Auth:StandIn:AllowedEnvironments (never Production): remove Pit:Auth:StandIn:Enabled, or name this environment there."]);
        }
    }
}
