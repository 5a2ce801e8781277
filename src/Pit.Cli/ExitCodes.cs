using Pit.Client;

namespace Pit.Cli;

/// <summary>
/// Process exit codes of <c>pit</c>: the one place they are defined and chosen. The README's table lists the same
/// codes; the CLI tests check each of them.
/// </summary>
internal static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Some work failed: some submissions refused or failed in processing (others went through), a failed submission's status, a sync already running, a run cancelled before it finished.</summary>
    public const int Failed = 1;

    /// <summary>Wrong command line or configuration.</summary>
    public const int Usage = 2;

    /// <summary>The server answered 400 (or 413, 415, 422) to every request: the request or the resource was invalid.</summary>
    public const int BadRequest = 3;

    /// <summary>401 from the server, or HelseID refused to issue a token.</summary>
    public const int Unauthorized = 4;

    /// <summary>403: authenticated, but the token lacks the scope or organisation needed.</summary>
    public const int Forbidden = 5;

    /// <summary>404: no such Patient or status URL.</summary>
    public const int NotFound = 6;

    /// <summary>The server (or HelseID) failed with 5xx or could not be reached.</summary>
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

    /// <summary>A token could not be had: HelseID unreachable or failing is the service's fault (7), a refusal is 4.</summary>
    public static int For(HelseIdTokenException e) =>
        e.InnerException is HttpRequestException or TaskCanceledException || (int?)e.StatusCode >= 500 ? Unavailable : Unauthorized;

    /// <summary>
    /// The code of a <c>pit submit</c> run: an authentication or access refusal wins (nothing will work until it is
    /// fixed); when nothing was accepted and every refusal has the same code, that code; otherwise 1 when anything was
    /// refused, failed or not processed in time.
    /// </summary>
    public static int ForSubmissions(int accepted, IReadOnlyCollection<int> refusalCodes, bool anyFailedOrUnfinished)
    {
        if (refusalCodes.FirstOrDefault(c => c is Unauthorized or Forbidden) is var auth and not 0)
        {
            return auth;
        }

        if (refusalCodes.Count > 0)
        {
            return accepted == 0 && refusalCodes.Distinct().Count() == 1 ? refusalCodes.First() : Failed;
        }

        return anyFailedOrUnfinished ? Failed : Ok;
    }
}
