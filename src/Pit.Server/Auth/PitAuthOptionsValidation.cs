using System.Net;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>Checks <c>Pit:Auth</c> at start-up; every message names the key at fault.</summary>
/// <param name="standInEnabled">Whether the local stand-in issues the tokens (then no authority is needed).</param>
internal sealed class PitAuthOptionsValidator(bool standInEnabled) : IValidateOptions<PitAuthOptions>
{
    public ValidateOptionsResult Validate(string? name, PitAuthOptions auth)
    {
        var failures = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                failures.Add(message);
            }
        }

        var hasAuthority = !string.IsNullOrWhiteSpace(auth.Authority);
        Check(standInEnabled || hasAuthority,
            "Pit:Auth:Authority is required: the HelseID issuer, e.g. https://helseid-sts.test.nhn.no (test) or https://helseid-sts.nhn.no (production).");
        Check(!hasAuthority || Uri.TryCreate(auth.Authority, UriKind.Absolute, out _), "Pit:Auth:Authority must be an absolute URL.");
        Check(auth.RequireHttpsMetadata || !hasAuthority || IsLoopback(auth.Authority!),
            "Pit:Auth:RequireHttpsMetadata=false is only allowed for a loopback authority (local development).");
        Check(!string.IsNullOrWhiteSpace(auth.Audience), "Pit:Auth:Audience must not be empty.");
        Check(auth.Algorithms.Length > 0, "Pit:Auth:Algorithms must not be empty.");
        Check(auth.ClockSkewSeconds is >= 0 and <= 300, "Pit:Auth:ClockSkewSeconds must be between 0 and 300.");
        Check(auth.TokenCacheCapacity >= 2, "Pit:Auth:TokenCacheCapacity must be at least 2.");

        var dpop = auth.DPoP;
        Check(dpop.Algorithms.Length > 0 && dpop.Algorithms.All(DpopAlgorithms.IsSupported),
            "Pit:Auth:DPoP:Algorithms must be non-empty; DPoP accepts only RS, PS and ES algorithms.");
        Check(dpop.MaxAgeSeconds is >= 1 and <= 600, "Pit:Auth:DPoP:MaxAgeSeconds must be between 1 and 600.");
        Check(dpop.MaxFutureSeconds is >= 0 and <= 60, "Pit:Auth:DPoP:MaxFutureSeconds must be between 0 and 60.");
        Check(dpop.MaxProofLength >= 512, "Pit:Auth:DPoP:MaxProofLength must be at least 512.");
        Check(dpop.NonceBucketSeconds >= 10, "Pit:Auth:DPoP:NonceBucketSeconds must be at least 10.");
        Check(string.IsNullOrWhiteSpace(dpop.NonceKey) || IsKey(dpop.NonceKey),
            "Pit:Auth:DPoP:NonceKey must be base64 of at least 32 bytes (e.g. `openssl rand -base64 32`).");
        Check(string.IsNullOrWhiteSpace(dpop.PreviousNonceKey) || IsKey(dpop.PreviousNonceKey),
            "Pit:Auth:DPoP:PreviousNonceKey must be base64 of at least 32 bytes.");
        Check(dpop.ReplayCacheProofsPerSecond is >= 1 and <= 1_000_000, "Pit:Auth:DPoP:ReplayCacheProofsPerSecond must be between 1 and 1000000.");
        Check(dpop.ReplayClientShare is > 0 and <= 1, "Pit:Auth:DPoP:ReplayClientShare must be greater than 0 and at most 1.");
        Check(dpop.ProofKeyCacheCapacity >= 2, "Pit:Auth:DPoP:ProofKeyCacheCapacity must be at least 2.");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool IsKey(string value)
    {
        Span<byte> bytes = stackalloc byte[value.Length];
        return Convert.TryFromBase64String(value, bytes, out var written) && written >= 32;
    }

    private static bool IsLoopback(string authority) =>
        Uri.TryCreate(authority, UriKind.Absolute, out var uri)
        && (uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip)));
}

/// <summary>Checks <c>Pit:Access</c>: every cross-organisation reader is a valid organisation number.</summary>
internal sealed class AccessOptionsValidator : IValidateOptions<AccessOptions>
{
    public ValidateOptionsResult Validate(string? name, AccessOptions options)
    {
        var bad = options.CrossOrganisationReaders.Where(o => !OrganisationNumber.IsValid(o)).ToList();
        return bad.Count == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Pit:Access:CrossOrganisationReaders holds {string.Join(", ", bad.Select(b => $"'{b}'"))}: not a valid 9-digit organisation number (mod 11).");
    }
}
