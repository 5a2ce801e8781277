using Microsoft.Extensions.Primitives;

namespace Pit.Server.Auth;

/// <summary>The facts of one request that its DPoP proof is checked against.</summary>
/// <param name="ProofHeader">All values of the request's <c>DPoP</c> header.</param>
/// <param name="Method">The request method, compared with <c>htm</c>.</param>
/// <param name="ExpectedHtu">The URL the client addressed (public base, path base and path).</param>
/// <param name="ExpectedAth">The <c>ath</c> the proof must carry (<see cref="AccessTokenFacts.Ath"/>, derived once per
/// access token), or null when the proof is not presented with an access token.</param>
/// <param name="ExpectedJkt">The token's <c>cnf.jkt</c>, when the proof key must match it.</param>
/// <param name="RequireNonce">Whether a server nonce must be present.</param>
/// <param name="NoncePurpose">Separates nonces of different endpoints (API, token endpoint).</param>
/// <param name="Client">Whose share of the replay bookkeeping the proof takes (client id and organisation); the proof
/// key's thumbprint when null.</param>
internal readonly record struct DpopProofRequest(
    StringValues ProofHeader,
    string Method,
    string ExpectedHtu,
    string? ExpectedAth,
    string? ExpectedJkt,
    bool RequireNonce,
    string NoncePurpose,
    string? Client = null);

/// <summary>Why a proof was refused.</summary>
internal enum DpopError
{
    None,
    Missing,
    NotExactlyOne,
    TooLong,
    Malformed,
    WrongType,
    AlgorithmNotAllowed,
    BadKey,
    PrivateKeyMaterial,
    BadSignature,
    MissingClaim,
    MethodMismatch,
    UrlMismatch,
    IssuedAtOutOfWindow,
    AccessTokenHashMismatch,
    KeyNotBoundToToken,
    Replayed,
    NonceRequired,
    OverShare,
}

/// <summary>The outcome of a proof check: the proof key's thumbprint, or a precise error.</summary>
internal readonly record struct DpopProofResult(DpopError Error, string? Description, string? Jkt, string? Nonce)
{
    /// <summary>For <see cref="DpopError.OverShare"/>: seconds until the client may try again.</summary>
    public int RetryAfterSeconds { get; init; }

    public bool Succeeded => Error == DpopError.None;

    /// <summary>The OAuth error code for <c>WWW-Authenticate</c>.</summary>
    public string ErrorCode => Error == DpopError.NonceRequired ? "use_dpop_nonce" : "invalid_dpop_proof";

    public static DpopProofResult Valid(string jkt) => new(DpopError.None, null, jkt, null);

    public static DpopProofResult Fail(DpopError error, string description, string? nonce = null) => new(error, description, null, nonce);
}
