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
        }
    }
}
