using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Pit.Server.Fhir;
using Pit.Server.Telemetry;

namespace Pit.Server.Auth;

/// <summary>
/// Turns JwtBearer into a DPoP resource server: takes the token only from <c>Authorization: DPoP</c>, requires
/// <c>cnf.jkt</c>, checks the proof after the token validates, and answers every refusal with a DPoP challenge.
/// </summary>
internal sealed class DpopJwtBearerEvents(
    DpopProofValidator validator,
    PublicBaseUrl publicBaseUrl,
    IOptions<PitAuthOptions> options,
    AuthRefusals refusals) : JwtBearerEvents
{
    internal const string ApiNoncePurpose = "pit-api";

    public override Task MessageReceived(MessageReceivedContext context)
    {
        var authorization = context.Request.Headers.Authorization;
        if (authorization.Count == 0)
        {
            context.NoResult();
            return Task.CompletedTask;
        }

        if (authorization.Count > 1)
        {
            refusals.Refused(AuthFailureReasons.SeveralAuthorizationHeaders);
            context.Fail(new DpopAuthenticationException("invalid_token", "Exactly one Authorization header is allowed"));
            return Task.CompletedTask;
        }

        var value = authorization[0] ?? "";
        var space = value.IndexOf(' ', StringComparison.Ordinal);
        var scheme = space < 0 ? value : value[..space];
        if (scheme.Equals("DPoP", StringComparison.OrdinalIgnoreCase))
        {
            var token = value[(space + 1)..].Trim();
            if (space < 0 || token.Length == 0)
            {
                refusals.Refused(AuthFailureReasons.TokenMissing);
                context.Fail(new DpopAuthenticationException("invalid_token", "The access token is missing"));
            }
            else
            {
                context.Token = token;
            }
        }
        else if (scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            refusals.Refused(AuthFailureReasons.BearerScheme);
            context.Fail(new DpopAuthenticationException("invalid_token", "The DPoP authorization scheme is required; Bearer is not accepted"));
        }
        else
        {
            context.NoResult();
        }

        return Task.CompletedTask;
    }

    public override async Task TokenValidated(TokenValidatedContext context)
    {
        // HelseID's rule: the API is the token's only audience. A token also meant for another API is refused.
        if (context.SecurityToken is JsonWebToken { Audiences: var audiences } && audiences.Take(2).Count() != 1)
        {
            refusals.Refused(AuthFailureReasons.TokenAudience);
            context.Fail(new DpopAuthenticationException("invalid_token", "The access token must have exactly one audience"));
            return;
        }

        // Derived once per cached token (AccessTokenFacts), not per request.
        if (context.SecurityToken is not JsonWebToken token || AccessTokenFacts.Of(token) is not { Jkt: { } jkt } facts)
        {
            refusals.Refused(AuthFailureReasons.TokenNotDpopBound);
            context.Fail(new DpopAuthenticationException("invalid_token", "The access token is not DPoP-bound (cnf.jkt is missing)"));
            return;
        }

        var request = context.Request;
        var expectedHtu = publicBaseUrl.For(request) + request.Path.ToUriComponent();
        DpopProofResult result;
        try
        {
            result = await validator.ValidateAsync(
                new DpopProofRequest(request.Headers["DPoP"], request.Method, expectedHtu, facts.Ath, jkt, options.Value.DPoP.RequireNonce, ApiNoncePurpose, facts.ReplayShareKey),
                context.HttpContext.RequestAborted);
        }
        catch (ReplayCacheUnavailableException ex)
        {
            refusals.Refused(AuthFailureReasons.ReplayCacheUnavailable);
            context.Fail(ex);
            return;
        }

        if (!result.Succeeded)
        {
            refusals.Refused(AuthFailureReasons.Of(result.Error));
            context.Fail(result.Error == DpopError.OverShare
                ? new DpopShareExceededException(result.RetryAfterSeconds)
                : new DpopAuthenticationException(result.ErrorCode, result.Description!, result.Nonce));
        }
    }

    public override Task AuthenticationFailed(AuthenticationFailedContext context)
    {
        refusals.Refused(AuthFailureReasons.Of(context.Exception));
        return Task.CompletedTask;
    }

    public override Task Challenge(JwtBearerChallengeContext context)
    {
        context.HandleResponse();
        if (context.AuthenticateFailure is null)
        {
            refusals.Refused(AuthFailureReasons.NoCredentials);
        }

        if (context.AuthenticateFailure is ReplayCacheUnavailableException)
        {
            return AuthResponses.Unavailable().ExecuteAsync(context.HttpContext);
        }

        if (context.AuthenticateFailure is DpopShareExceededException over)
        {
            return AuthResponses.TooManyProofs(over.RetryAfterSeconds).ExecuteAsync(context.HttpContext);
        }

        var (error, description, nonce) = context.AuthenticateFailure switch
        {
            null => (null, null, null),
            DpopAuthenticationException e => (e.Error, e.Message, e.Nonce),
            SecurityTokenExpiredException => ("invalid_token", "The access token expired", null),
            SecurityTokenNotYetValidException => ("invalid_token", "The access token is not yet valid", null),
            SecurityTokenInvalidAudienceException or SecurityTokenInvalidIssuerException =>
                ("invalid_token", "The access token was not issued for this API", null),
            SecurityTokenInvalidTypeException => ("invalid_token", "The access token typ must be at+jwt or JWT", null),
            SecurityTokenInvalidAlgorithmException => ("invalid_token", "The access token alg is not accepted", null),
            SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException =>
                ("invalid_token", "The access token signature is invalid", null),
            _ => ("invalid_token", "The access token is invalid", (string?)null),
        };
        return AuthResponses.Unauthorized(validator.AlgorithmList, error, description, nonce).ExecuteAsync(context.HttpContext);
    }
}

/// <summary>The client presented more new DPoP proofs than its share of the current bucket (answered 429).</summary>
internal sealed class DpopShareExceededException(int retryAfterSeconds) : Exception("The client exceeded its share of DPoP proofs")
{
    public int RetryAfterSeconds { get; } = retryAfterSeconds;
}
