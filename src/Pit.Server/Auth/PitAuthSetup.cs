using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

// PLACEHOLDER until the HelseID + DPoP work (issue 3) lands: authenticates every request as one development
// organisation. Replaced wholesale by the real registration.
internal static class PitAuthSetup
{
    public static IServiceCollection AddPitAuth(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment)
    {
        services.AddOptions<AccessOptions>().Bind(configuration.GetSection("Pit:Access"));
        services.AddAuthentication("placeholder").AddScheme<AuthenticationSchemeOptions, PlaceholderHandler>("placeholder", null);
        services.AddAuthorizationBuilder()
            .AddPolicy(PitPolicies.Read, p => p.RequireAuthenticatedUser())
            .AddPolicy(PitPolicies.Write, p => p.RequireAuthenticatedUser());
        return services;
    }

    public static WebApplication UsePitAuth(this WebApplication app)
    {
        app.UseAuthentication();
        app.UseAuthorization();
        return app;
    }

    private sealed class PlaceholderHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var org = Request.Headers["X-Placeholder-Org"].ToString();
            var identity = new ClaimsIdentity(
                [new Claim(HelseIdClaims.ClientId, "placeholder"), new Claim(HelseIdClaims.OrgnrParent, org.Length > 0 ? org : "974762501")], "placeholder");
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), "placeholder")));
        }
    }
}
