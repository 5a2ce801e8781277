using System.Net.Http.Headers;
using System.Text.RegularExpressions;

namespace Pit.Client;

/// <summary>Reads the parameters of a <c>WWW-Authenticate: DPoP …</c> challenge (RFC 9449 §7.1).</summary>
internal static partial class DpopChallenge
{
    public const string UseDpopNonce = "use_dpop_nonce";
    public const string NonceHeader = "DPoP-Nonce";

    /// <summary>The parameters of the first DPoP (or Bearer) challenge, or an empty map.</summary>
    public static IReadOnlyDictionary<string, string> Parameters(HttpResponseHeaders headers)
    {
        foreach (var challenge in headers.WwwAuthenticate)
        {
            if (string.Equals(challenge.Scheme, "DPoP", StringComparison.OrdinalIgnoreCase)
                || string.Equals(challenge.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase))
            {
                return Parse(challenge.Parameter);
            }
        }

        return new Dictionary<string, string>();
    }

    public static string? Error(HttpResponseHeaders headers) => Parameters(headers).GetValueOrDefault("error");

    public static string? Nonce(HttpHeaders headers) =>
        headers.TryGetValues(NonceHeader, out var values) ? values.FirstOrDefault(v => v.Length > 0) : null;

    internal static Dictionary<string, string> Parse(string? parameter)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (string.IsNullOrEmpty(parameter))
        {
            return result;
        }

        foreach (Match match in AuthParam().Matches(parameter))
        {
            var value = match.Groups["quoted"].Success
                ? match.Groups["quoted"].Value.Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal)
                : match.Groups["token"].Value;
            result.TryAdd(match.Groups["name"].Value, value);
        }

        return result;
    }

    [GeneratedRegex("""(?<name>[A-Za-z0-9_\-]+)\s*=\s*(?:"(?<quoted>(?:[^"\\]|\\.)*)"|(?<token>[^\s,]+))""")]
    private static partial Regex AuthParam();
}
