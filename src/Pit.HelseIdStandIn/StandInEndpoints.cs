using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pit.Security;

namespace Pit.HelseIdStandIn;

/// <summary>Registration and endpoints of the local HelseID stand-in.</summary>
public static class StandInEndpoints
{
    /// <summary>
    /// Registers <see cref="StandInIssuer"/> bound to <paramref name="section"/>. The host must also register an
    /// <see cref="ITokenEndpointDpopValidator"/>.
    /// </summary>
    public static IServiceCollection AddHelseIdStandIn(this IServiceCollection services, IConfigurationSection section)
    {
        services.AddOptions<StandInOptions>().Bind(section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StandInOptions>, StandInOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<StandInIssuer>();
        services.TryAddSingleton<ClientAssertionValidator>();
        return services;
    }

    /// <summary>
    /// Maps, under the stand-in's path: <c>/.well-known/openid-configuration</c>,
    /// <c>/.well-known/openid-configuration/jwks</c> and <c>/connect/token</c> (HelseID's layout).
    /// </summary>
    public static IEndpointRouteBuilder MapHelseIdStandIn(this IEndpointRouteBuilder endpoints)
    {
        var path = endpoints.ServiceProvider.GetRequiredService<StandInIssuer>().Path;
        var group = endpoints.MapGroup(path).AllowAnonymous().ExcludeFromDescription();
        group.MapGet("/.well-known/openid-configuration", Discovery);
        group.MapGet("/.well-known/openid-configuration/jwks", (StandInIssuer issuer) =>
            Results.Text(new JsonObject { ["keys"] = new JsonArray(issuer.PublicJwk()) }.ToJsonString(), "application/json"));
        group.MapPost("/connect/token", TokenAsync).DisableAntiforgery();
        return endpoints;
    }

    private static IResult Discovery(StandInIssuer issuer)
    {
        var scopes = issuer.Clients.SelectMany(c => c.Scopes).Distinct(StringComparer.Ordinal).Select(s => (JsonNode?)s);
        var document = new JsonObject
        {
            ["issuer"] = issuer.Issuer,
            ["jwks_uri"] = issuer.Issuer + "/.well-known/openid-configuration/jwks",
            ["token_endpoint"] = issuer.TokenEndpoint,
            ["scopes_supported"] = new JsonArray([.. scopes]),
            ["grant_types_supported"] = new JsonArray("client_credentials"),
            ["token_endpoint_auth_methods_supported"] = new JsonArray("private_key_jwt"),
            ["token_endpoint_auth_signing_alg_values_supported"] = new JsonArray([.. DpopAlgorithms.All.Select(a => (JsonNode?)a)]),
            ["dpop_signing_alg_values_supported"] = new JsonArray([.. DpopAlgorithms.All.Select(a => (JsonNode?)a)]),
            ["id_token_signing_alg_values_supported"] = new JsonArray("RS256"),
        };
        return Results.Text(document.ToJsonString(), "application/json");
    }

    private static async Task<IResult> TokenAsync(
        HttpContext context,
        StandInIssuer issuer,
        ClientAssertionValidator assertions,
        ITokenEndpointDpopValidator dpop,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger(typeof(StandInEndpoints).FullName!);
        if (!context.Request.HasFormContentType)
        {
            return Error("invalid_request", "expected application/x-www-form-urlencoded");
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted);
        if (form["grant_type"] != "client_credentials")
        {
            return Error("unsupported_grant_type", "only client_credentials is supported");
        }

        if (form["client_assertion_type"] != ClientAssertionValidator.AssertionType || form["client_assertion"].Count != 1)
        {
            return Error("invalid_client", "a private_key_jwt client assertion is required");
        }

        // The proof (and its nonce) is checked before the client assertion so that the nonce retry, which
        // resends the same assertion as HelseID clients do, does not trip the assertion's replay check.
        var proof = await dpop.ValidateAsync(context.Request, issuer.TokenEndpoint, context.RequestAborted);
        if (proof.Jkt is null)
        {
            if (proof.Nonce is not null)
            {
                context.Response.Headers["DPoP-Nonce"] = proof.Nonce;
            }

            return Error(proof.Error ?? "invalid_dpop_proof", proof.ErrorDescription ?? "invalid DPoP proof");
        }

        var clientIdParameter = form["client_id"].Count == 1 ? form["client_id"].ToString() : null;
        var (client, assertion, assertionError) = await assertions.ValidateAsync(form["client_assertion"].ToString(), clientIdParameter);
        if (client is null || assertion is null)
        {
            logger.LogInformation("Stand-in token request refused: {Reason}", assertionError);
            return Error("invalid_client", assertionError!);
        }

        var (grant, grantError, grantDescription) = OrganisationGrant.Resolve(client, assertion);
        if (grant is null)
        {
            logger.LogInformation("Stand-in token request of client {ClientId} refused: {Error} {Reason}", client.ClientId, grantError, grantDescription);
            return Error(grantError!, grantDescription!);
        }

        var requested = form["scope"].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (requested.Any(s => !client.Scopes.Contains(s, StringComparer.Ordinal)))
        {
            return Error("invalid_scope", "a requested scope is not allowed for this client");
        }

        var scopes = requested.Length > 0 ? requested : client.Scopes;
        var token = issuer.CreateAccessToken(client, grant, scopes, proof.Jkt);
        logger.LogInformation("Stand-in issued an access token to client {ClientId} for organisation {OrgnrParent}", client.ClientId, grant.OrgnrParent);
        context.Response.Headers.CacheControl = "no-store";
        var body = new JsonObject
        {
            ["access_token"] = token,
            ["expires_in"] = (int)issuer.TokenLifetime.TotalSeconds,
            ["token_type"] = "DPoP",
            ["scope"] = string.Join(' ', scopes),
        };
        return Results.Text(body.ToJsonString(), "application/json");
    }

    private static IResult Error(string error, string description) =>
        Results.Text(new JsonObject { ["error"] = error, ["error_description"] = description }.ToJsonString(), "application/json", statusCode: 400);
}
