using Microsoft.Extensions.Options;

namespace Pit.Server.Fhir;

/// <summary>
/// The external origin (and path base) clients use to reach this server: <c>Pit:PublicBaseUrl</c> when set,
/// otherwise the request's scheme, host and path base (after forwarded headers from trusted proxies are applied).
/// Used for links in Bundles and for the DPoP <c>htu</c> check.
/// </summary>
internal sealed class PublicBaseUrl(IOptions<PitOptions> options)
{
    private readonly string? _configured = Normalise(options.Value.PublicBaseUrl);

    /// <summary>The base without trailing slash, e.g. <c>https://api.pit.test.nhn.no</c>.</summary>
    public string For(HttpRequest request) =>
        _configured ?? string.Concat(request.Scheme, "://", request.Host.Value, request.PathBase.Value);

    private static string? Normalise(string? url) => string.IsNullOrWhiteSpace(url) ? null : url.TrimEnd('/');
}

/// <summary>Options of section <c>Pit</c> that belong to no slice.</summary>
internal sealed class PitOptions
{
    /// <summary>External origin used in links, e.g. <c>https://api.pit.test.nhn.no</c>. Optional.</summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>Proxies whose <c>X-Forwarded-*</c> headers are trusted (IP addresses). None by default, not even loopback.</summary>
    public string[] KnownProxies { get; set; } = [];

    /// <summary>Networks (CIDR, e.g. <c>10.0.0.0/8</c>) whose proxies' <c>X-Forwarded-*</c> headers are trusted. None by default.</summary>
    public string[] KnownNetworks { get; set; } = [];
}
