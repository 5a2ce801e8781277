using System.Text;

namespace Pit.Server.Auth;

/// <summary>
/// RFC 3986 §6.2.2 syntax-based normalisation of a DPoP <c>htu</c>: scheme and host lower-cased, default port
/// dropped, dot segments removed, percent-encoding of unreserved characters decoded and hex digits upper-cased,
/// empty path as <c>/</c>; query and fragment ignored (RFC 9449 §4.3).
/// </summary>
internal static class HtuNormaliser
{
    /// <summary>The normal form, or null when <paramref name="url"/> is not an absolute http(s) URL.</summary>
    public static string? Normalise(string? url)
    {
        if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri)
            || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            return null;
        }

        var builder = new StringBuilder(url.Length);
        builder.Append(uri.Scheme.ToLowerInvariant()).Append("://").Append(uri.Host.ToLowerInvariant());
        if (!uri.IsDefaultPort)
        {
            builder.Append(':').Append(uri.Port);
        }

        var path = uri.AbsolutePath;
        if (path.Length == 0)
        {
            builder.Append('/');
        }

        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (c == '%' && i + 2 < path.Length && Uri.IsHexDigit(path[i + 1]) && Uri.IsHexDigit(path[i + 2]))
            {
                var decoded = (char)Convert.ToInt32(path.Substring(i + 1, 2), 16);
                if (char.IsAsciiLetterOrDigit(decoded) || decoded is '-' or '.' or '_' or '~')
                {
                    builder.Append(decoded);
                }
                else
                {
                    builder.Append('%').Append(char.ToUpperInvariant(path[i + 1])).Append(char.ToUpperInvariant(path[i + 2]));
                }

                i += 2;
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
