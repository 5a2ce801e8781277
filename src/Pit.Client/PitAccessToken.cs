namespace Pit.Client;

/// <summary>A DPoP-bound access token and when it expires. <see cref="ToString"/> never shows the token itself.</summary>
public sealed class PitAccessToken
{
    /// <summary>Creates a token record.</summary>
    /// <param name="value">The compact JWT.</param>
    /// <param name="expiresAt">When it stops being valid.</param>
    /// <param name="scopes">The scopes granted, as the token endpoint reported them.</param>
    public PitAccessToken(string value, DateTimeOffset expiresAt, IReadOnlyList<string> scopes)
    {
        ArgumentException.ThrowIfNullOrEmpty(value);
        Value = value;
        ExpiresAt = expiresAt;
        Scopes = scopes;
    }

    /// <summary>The access token (a compact JWT). Keep it out of logs.</summary>
    public string Value { get; }

    /// <summary>When the token expires.</summary>
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Granted scopes.</summary>
    public IReadOnlyList<string> Scopes { get; }

    /// <inheritdoc />
    public override string ToString() => $"DPoP access token expiring {ExpiresAt:O} ({string.Join(' ', Scopes)})";
}

/// <summary>A source of DPoP-bound access tokens, such as <see cref="HelseIdTokenClient"/>.</summary>
public interface IDpopTokenSource
{
    /// <summary>The proof factory whose key the tokens are bound to.</summary>
    DpopProofFactory Proofs { get; }

    /// <summary>Returns a valid token, from cache unless <paramref name="forceRefresh"/> is set or it is about to expire.</summary>
    /// <param name="forceRefresh">Ignore the cached token.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    ValueTask<PitAccessToken> GetAccessTokenAsync(bool forceRefresh = false, CancellationToken cancellationToken = default);
}
