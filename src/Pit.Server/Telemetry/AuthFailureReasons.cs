using System.Text;
using Microsoft.IdentityModel.Tokens;
using Pit.Server.Auth;

namespace Pit.Server.Telemetry;

/// <summary>The fixed set of values of the <c>reason</c> tag of <c>pit.auth.failures</c>: one per token or proof check.</summary>
internal static class AuthFailureReasons
{
    public const string NoCredentials = "no_credentials";
    public const string SeveralAuthorizationHeaders = "several_authorization_headers";
    public const string TokenMissing = "token_missing";
    public const string BearerScheme = "bearer_scheme";
    public const string TokenNotDpopBound = "token_not_dpop_bound";
    public const string ReplayCacheUnavailable = "replay_cache_unavailable";
    public const string InsufficientScope = "insufficient_scope";
    public const string InvalidOrganisation = "invalid_organisation";
    public const string TokenAudience = "token_audience";

    private static readonly Dictionary<DpopError, string> ProofReasons =
        Enum.GetValues<DpopError>().ToDictionary(e => e, e => "proof_" + SnakeCase(e.ToString()));

    /// <summary><c>proof_replayed</c>, <c>proof_url_mismatch</c>, ...</summary>
    public static string Of(DpopError error) => ProofReasons[error];

    /// <summary>The reason for an access token the token handler refused.</summary>
    public static string Of(Exception exception) => exception switch
    {
        SecurityTokenExpiredException => "token_expired",
        SecurityTokenNotYetValidException => "token_not_yet_valid",
        SecurityTokenInvalidAudienceException => TokenAudience,
        SecurityTokenInvalidIssuerException => "token_issuer",
        SecurityTokenInvalidTypeException => "token_type",
        SecurityTokenInvalidAlgorithmException => "token_algorithm",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => "token_signature",
        SecurityTokenMalformedException or ArgumentException => "token_malformed",
        _ => "token_invalid",
    };

    private static string SnakeCase(string name)
    {
        var text = new StringBuilder(name.Length + 4);
        foreach (var c in name)
        {
            if (char.IsUpper(c) && text.Length > 0)
            {
                text.Append('_');
            }

            text.Append(char.ToLowerInvariant(c));
        }

        return text.ToString();
    }
}
