namespace Pit.Server.Auth;

/// <summary>Options of section <c>Pit:Auth</c>: the HelseID access token.</summary>
internal sealed class PitAuthOptions
{
    /// <summary>
    /// HelseID issuer, exact, no trailing slash: <c>https://helseid-sts.test.nhn.no</c> (test) or
    /// <c>https://helseid-sts.nhn.no</c> (production). Discovery at <c>{Authority}/.well-known/openid-configuration</c>.
    /// Required unless the local stand-in is enabled (then it names the stand-in's issuer, optional).
    /// </summary>
    public string? Authority { get; set; }

    /// <summary>Expected <c>aud</c>: a token must carry exactly this one audience. Default <c>nhn:pit</c>.</summary>
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
internal sealed class DpopOptions
{
    /// <summary>Proof algorithms accepted and advertised in <c>algs</c>. Default: RS, PS and ES 256/384/512.</summary>
    public string[] Algorithms { get; set; } = [.. DpopAlgorithms.All];

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

    /// <summary>
    /// The retired nonce key during a rotation (base64, at least 32 bytes): nonces made with it are still accepted,
    /// new nonces are made with <see cref="NonceKey"/>. Empty by default.
    /// </summary>
    public string? PreviousNonceKey { get; set; }

    /// <summary>Length of a nonce time bucket, seconds; a nonce is accepted in its bucket and the next. Default 300.</summary>
    public int NonceBucketSeconds { get; set; } = 300;

    /// <summary>
    /// Proofs per second, sustained over the whole <c>iat</c> window, that one instance's replay bookkeeping is sized
    /// for. Default 20 000. The in-memory replay cache holds at most this times (window + 2 buckets) entries.
    /// </summary>
    public int ReplayCacheProofsPerSecond { get; set; } = 20_000;

    /// <summary>
    /// The share of <see cref="ReplayCacheProofsPerSecond"/> one client (<c>client_id</c> + <c>orgnr_parent</c>) may
    /// take; beyond it the client is answered 429 until the current 5-second bucket ends. Default 0.25.
    /// </summary>
    public double ReplayClientShare { get; set; } = 0.25;

    /// <summary>Upper bound on imported proof public keys kept by thumbprint. Default 10 000.</summary>
    public int ProofKeyCacheCapacity { get; set; } = 10_000;
}
