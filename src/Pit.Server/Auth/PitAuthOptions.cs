namespace Pit.Server.Auth;

/// <summary>Options of section <c>Pit:Auth</c>: the HelseID access token.</summary>
public sealed class PitAuthOptions
{
    /// <summary>All asymmetric JWS algorithms HelseID advertises.</summary>
    public static readonly string[] AsymmetricAlgorithms =
        ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];

    /// <summary>
    /// HelseID issuer, exact, no trailing slash: <c>https://helseid-sts.test.nhn.no</c> (test) or
    /// <c>https://helseid-sts.nhn.no</c> (production). Discovery at <c>{Authority}/.well-known/openid-configuration</c>.
    /// Required unless the local stand-in is enabled (then it names the stand-in's issuer, optional).
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>Expected <c>aud</c>. Default <c>nhn:pit</c>.</summary>
    public string Audience { get; set; } = "nhn:pit";

    /// <summary>Refuse a non-HTTPS authority. Default true; false is accepted only for a loopback authority.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    /// <summary>Access-token signature algorithms accepted. Default <c>RS256</c>, as HelseID issues.</summary>
    public string[] Algorithms { get; set; } = ["RS256"];

    /// <summary>Leeway on <c>exp</c>/<c>nbf</c>, seconds. Default 5.</summary>
    public int ClockSkewSeconds { get; set; } = 5;

    /// <summary>Cache validated access tokens by hash until their <c>exp</c>. Default true.</summary>
    public bool CacheValidatedTokens { get; set; } = true;

    /// <summary>Upper bound on cached validated tokens. Default 10 000.</summary>
    public int TokenCacheCapacity { get; set; } = 10_000;

    /// <summary>DPoP proof settings (<c>Pit:Auth:DPoP</c>).</summary>
    public DpopOptions DPoP { get; set; } = new();
}

/// <summary>Options of section <c>Pit:Auth:DPoP</c>.</summary>
public sealed class DpopOptions
{
    /// <summary>Proof algorithms accepted and advertised in <c>algs</c>. Default: RS, PS and ES 256/384/512.</summary>
    public string[] Algorithms { get; set; } = [.. PitAuthOptions.AsymmetricAlgorithms];

    /// <summary>Oldest accepted <c>iat</c>, seconds before now. Default 60.</summary>
    public int MaxAgeSeconds { get; set; } = 60;

    /// <summary>Furthest accepted <c>iat</c>, seconds after now. Default 5.</summary>
    public int MaxFutureSeconds { get; set; } = 5;

    /// <summary>Longest accepted proof, in characters. Default 8192.</summary>
    public int MaxProofLength { get; set; } = 8192;

    /// <summary>Require a server nonce in API proofs (401 <c>use_dpop_nonce</c> first). Default false.</summary>
    public bool RequireNonce { get; set; }

    /// <summary>
    /// Base64 HMAC key (at least 32 bytes) for stateless nonces. When empty a random key is generated per process,
    /// so several instances only agree on nonces when they share a configured key.
    /// </summary>
    public string? NonceKey { get; set; }

    /// <summary>Length of a nonce time bucket, seconds; a nonce is accepted in its bucket and the next. Default 300.</summary>
    public int NonceBucketSeconds { get; set; } = 300;

    /// <summary>Upper bound on remembered (jkt, jti) pairs in the in-memory replay cache. Default 100 000.</summary>
    public int ReplayCacheCapacity { get; set; } = 100_000;
}
