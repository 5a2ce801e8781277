using System.CommandLine;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary><c>pit token</c>: gets a token and shows what it says, never the token itself unless asked.</summary>
internal static class TokenCommand
{
    public static Command Build(PitCli cli)
    {
        var raw = new Option<bool>("--raw") { Description = "Print the raw access token (a secret: keep it out of logs and tickets)." };
        var command = new Command("token", "Get an access token from HelseID and print its decoded header and claims.") { raw };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);
            var tokens = client.Tokens!;
            var token = await tokens.GetAccessTokenAsync(false, ct).ConfigureAwait(false);
            if (parse.GetValue(raw))
            {
                cli.Context.WriteData(token.Value);
                return ExitCodes.Ok;
            }

            var jwt = new JsonWebToken(token.Value);
            cli.Context.Out.MarkupLine("[bold]Header[/]");
            cli.Context.WriteData(ReadCommands.Pretty(Base64UrlDecode(jwt.EncodedHeader)));
            cli.Context.Out.MarkupLine("[bold]Claims[/]");
            cli.Context.WriteData(ReadCommands.Pretty(Base64UrlDecode(jwt.EncodedPayload)));

            var jkt = jwt.TryGetPayloadValue<JsonElement>("cnf", out var cnf) && cnf.ValueKind == JsonValueKind.Object && cnf.TryGetProperty("jkt", out var j) ? j.GetString() : null;
            var bound = string.Equals(jkt, tokens.Proofs.Key.Thumbprint, StringComparison.Ordinal);
            cli.Context.Out.MarkupLineInterpolated($"Expires {token.ExpiresAt:u}; DPoP key thumbprint {tokens.Proofs.Key.Thumbprint}");
            cli.Context.Out.MarkupLine(bound ? "[green]The token is bound to this client's DPoP key (cnf.jkt matches).[/]" : "[red]The token's cnf.jkt does not match this client's DPoP key.[/]");
            return bound ? ExitCodes.Ok : ExitCodes.Failed;
        }));
        return command;
    }

    private static string Base64UrlDecode(string value) => Microsoft.IdentityModel.Tokens.Base64UrlEncoder.Decode(value);
}
