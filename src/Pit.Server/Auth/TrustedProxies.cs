using System.Net;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Options;
using Pit.Server.Fhir;

namespace Pit.Server.Auth;

/// <summary>
/// Who may tell the server its public URL. The DPoP <c>htu</c> check and every link compare against that URL, so
/// <c>X-Forwarded-Host</c>/<c>-Proto</c> are honoured only from exactly the configured <c>Pit:KnownProxies</c> and
/// <c>Pit:KnownNetworks</c>: nothing by default, not even loopback (ASP.NET Core's own default). Production must name
/// its public URL (<c>Pit:PublicBaseUrl</c>) and then never derives it from a request at all.
/// </summary>
internal static class TrustedProxies
{
    public static IServiceCollection AddPitTrustedProxies(this IServiceCollection services, IHostEnvironment environment)
    {
        services.AddSingleton<IValidateOptions<PitOptions>>(new PitOptionsValidator(environment));
        services.AddOptions<PitOptions>().ValidateOnStart();
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<PitOptions>>((forwarded, pit) =>
        {
            // With both lists empty the middleware checks no peer at all and trusts everyone: then it must not run.
            var any = pit.Value.KnownProxies.Length > 0 || pit.Value.KnownNetworks.Length > 0;
            forwarded.ForwardedHeaders = any
                ? ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto | ForwardedHeaders.XForwardedHost
                : ForwardedHeaders.None;
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            foreach (var proxy in pit.Value.KnownProxies)
            {
                forwarded.KnownProxies.Add(IPAddress.Parse(proxy));
            }

            foreach (var network in pit.Value.KnownNetworks)
            {
                forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
            }
        });
        return services;
    }

    private sealed class PitOptionsValidator(IHostEnvironment environment) : IValidateOptions<PitOptions>
    {
        public ValidateOptionsResult Validate(string? name, PitOptions options)
        {
            var failures = new List<string>();
            if (environment.IsProduction() && string.IsNullOrWhiteSpace(options.PublicBaseUrl))
            {
                failures.Add("Pit:PublicBaseUrl is required in Production: the external https URL clients use (e.g. https://api.pit.nhn.no). " +
                    "DPoP proofs are checked against it, so it must never come from request headers.");
            }

            failures.AddRange(options.KnownProxies.Where(p => !IPAddress.TryParse(p, out _))
                .Select(p => $"Pit:KnownProxies holds '{p}', which is not an IP address."));
            failures.AddRange(options.KnownNetworks.Where(n => !System.Net.IPNetwork.TryParse(n, out _))
                .Select(n => $"Pit:KnownNetworks holds '{n}', which is not a network in CIDR form (e.g. 10.0.0.0/8)."));
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}
