using Microsoft.AspNetCore.Http;

namespace Pit.HelseIdStandIn;

/// <summary>
/// Checks the DPoP proof of a token request. Supplied by the host so the stand-in and the API share one proof
/// validator (Pit.Server registers its <c>DpopProofValidator</c>); the implementation must require its own nonce.
/// </summary>
public interface ITokenEndpointDpopValidator
{
    /// <summary>Validates the request's <c>DPoP</c> header for a POST to <paramref name="tokenEndpointUrl"/>.</summary>
    ValueTask<TokenEndpointDpopResult> ValidateAsync(HttpRequest request, string tokenEndpointUrl, CancellationToken cancellationToken);
}

/// <summary>Outcome of a token-endpoint proof check.</summary>
/// <param name="Jkt">RFC 7638 thumbprint of the proof key when valid.</param>
/// <param name="Error">OAuth error code (<c>invalid_dpop_proof</c>, <c>use_dpop_nonce</c>) when invalid.</param>
/// <param name="ErrorDescription">Human-readable reason when invalid.</param>
/// <param name="Nonce">A fresh nonce to send in <c>DPoP-Nonce</c>, when one is required.</param>
public sealed record TokenEndpointDpopResult(string? Jkt, string? Error, string? ErrorDescription, string? Nonce);
