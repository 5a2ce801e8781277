namespace Pit.Cli;

/// <summary>Process exit codes of <c>pit</c> (documented in the README).</summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Some work failed (for example some submissions were refused or failed processing).</summary>
    public const int Failed = 1;

    /// <summary>Wrong command line or configuration.</summary>
    public const int Usage = 2;

    /// <summary>The server answered 400: the request or a resource was invalid.</summary>
    public const int BadRequest = 3;

    /// <summary>401 from the server, or HelseID refused to issue a token.</summary>
    public const int Unauthorized = 4;

    /// <summary>403: authenticated, but the token lacks the scope or organisation needed.</summary>
    public const int Forbidden = 5;

    /// <summary>404: no such Patient or status URL.</summary>
    public const int NotFound = 6;

    /// <summary>The server failed (5xx) or could not be reached.</summary>
    public const int Unavailable = 7;

    public static int For(System.Net.HttpStatusCode status) => (int)status switch
    {
        400 or 413 or 415 or 422 => BadRequest,
        401 => Unauthorized,
        403 => Forbidden,
        404 or 410 => NotFound,
        >= 500 => Unavailable,
        _ => Failed,
    };
}
