using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Pit.HelseIdStandIn;

namespace Pit.Server.Auth;

/// <summary>
/// Hands JwtBearer the in-process stand-in's issuer and public key instead of fetching its discovery document:
/// the server needs no HTTP round trip to itself, and tests on a dynamic loopback port work because the issuer is
/// resolved lazily (configured, or the first listening address once Kestrel has started).
/// </summary>
internal sealed class StandInConfigurationManager(StandInIssuer issuer) : IConfigurationManager<OpenIdConnectConfiguration>
{
    private OpenIdConnectConfiguration? _configuration;

    public Task<OpenIdConnectConfiguration> GetConfigurationAsync(CancellationToken cancel)
    {
        if (_configuration is null)
        {
            var configuration = new OpenIdConnectConfiguration { Issuer = issuer.Issuer, TokenEndpoint = issuer.TokenEndpoint };
            configuration.SigningKeys.Add(issuer.PublicKey);
            _configuration = configuration;
        }

        return Task.FromResult(_configuration);
    }

    public void RequestRefresh()
    {
    }
}

/// <summary>The stand-in's token endpoint checks proofs with the API's validator, always with its own nonce.</summary>
internal sealed class StandInTokenEndpointDpopValidator(DpopProofValidator validator) : ITokenEndpointDpopValidator
{
    private const string NoncePurpose = "helseid-standin-token";

    public async ValueTask<TokenEndpointDpopResult> ValidateAsync(HttpRequest request, string tokenEndpointUrl, CancellationToken cancellationToken)
    {
        var result = await validator.ValidateAsync(
            new DpopProofRequest(request.Headers["DPoP"], request.Method, tokenEndpointUrl, null, null, RequireNonce: true, NoncePurpose),
            cancellationToken);
        return result.Succeeded
            ? new TokenEndpointDpopResult(result.Jkt, null, null, null)
            : new TokenEndpointDpopResult(null, result.ErrorCode, result.Description, result.Nonce);
    }
}
