using Pit.Client;
using Spectre.Console;

namespace Pit.Cli;

/// <summary>Explains a server error: what the status means for the user, the server's reasons, the challenge.</summary>
internal static class ErrorReport
{
    public static void Write(IAnsiConsole console, PitApiException e)
    {
        var hint = (int)e.StatusCode switch
        {
            400 => "The server refused the request as invalid.",
            401 => "Not authenticated: the access token or the DPoP proof was not accepted.",
            403 => "Not allowed: the token lacks the needed scope or organisation.",
            404 => "Not found.",
            413 => "Too large: PIT accepts at most 900 KB per request.",
            415 => "Wrong content type.",
            429 => "Too many requests, even after waiting as the server asked.",
            >= 500 => "The server failed.",
            _ => "The server refused the request.",
        };
        console.MarkupLineInterpolated($"[red]Error {(int)e.StatusCode} {e.StatusCode}:[/] {hint}");
        foreach (var line in e.IssueLines)
        {
            console.MarkupLineInterpolated($"  {line}");
        }

        if (e.IssueLines.Count == 0)
        {
            console.MarkupLineInterpolated($"  {e.Message}");
        }

        if (e.AuthenticateChallenge is not null)
        {
            console.MarkupLineInterpolated($"  [grey]WWW-Authenticate: {e.AuthenticateChallenge}[/]");
            if (Hint(e.AuthenticateChallenge) is { } advice)
            {
                console.MarkupLineInterpolated($"  [yellow]{advice}[/]");
            }
        }
    }

    /// <summary>What to do about a 401 whose cause the user may not guess from the challenge alone; null when none.</summary>
    public static string? Hint(string challenge) =>
        challenge.Contains("signature is invalid", StringComparison.OrdinalIgnoreCase)
            ? "The token was not signed by a key the server knows. The development HelseID stand-in makes a new signing key every time the " +
              "server starts, so tokens from before a restart are refused: get a new token (pit gets one on every run; with " +
              "dev/helseid-standin/dpop-curl.sh run its token command again)."
            : null;
}
