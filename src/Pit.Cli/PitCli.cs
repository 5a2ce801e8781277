using System.CommandLine;
using Pit.Cli.Commands;
using Pit.Client;
using Spectre.Console;

namespace Pit.Cli;

/// <summary>The <c>pit</c> command tree. Every run gets its own context; nothing is static but the option definitions.</summary>
internal sealed class PitCli
{
    public readonly Option<string?> Config = new("--config") { Description = "Config file (JSON). Default: $PIT_CONFIG or ~/.config/pit/config.json.", Recursive = true };
    public readonly Option<bool> Dev = new("--dev") { Description = $"Use the local server ({DevDefaults.BaseUrl}) with the HelseID stand-in and its development client.", Recursive = true };
    public readonly Option<string?> BaseUrl = new("--base-url") { Description = "PIT server base URL (env PIT_BASE_URL).", Recursive = true };
    public readonly Option<string?> Authority = new("--authority") { Description = "HelseID issuer (env PIT_AUTHORITY).", Recursive = true };
    public readonly Option<string?> ClientId = new("--client-id") { Description = "HelseID client id (env PIT_CLIENT_ID).", Recursive = true };
    public readonly Option<string?> KeyFile = new("--key-file") { Description = "The client's private JWK file, RSA or EC (env PIT_KEY_FILE).", Recursive = true };
    public readonly Option<string?> DpopKeyFile = new("--dpop-key-file") { Description = "A separate private JWK for DPoP proofs (env PIT_DPOP_KEY_FILE); default: the client key.", Recursive = true };
    public readonly Option<string[]> Scope = new("--scope") { Description = "Scope to request; repeatable (env PIT_SCOPES, space-separated).", Recursive = true, AllowMultipleArgumentsPerToken = false };
    public readonly Option<string?> Org = new("--org") { Description = "Multi-tenant clients: organisation number to act for (env PIT_ORG).", Recursive = true };
    public readonly Option<string?> ChildOrg = new("--child-org") { Description = "Sub-unit organisation number: under --org for multi-tenant clients, alone for a single-tenant client's sub-unit (env PIT_CHILD_ORG).", Recursive = true };

    private readonly CliContext _context;

    public PitCli(CliContext context)
    {
        _context = context;
    }

    public CliContext Context => _context;

    public RootCommand BuildRoot()
    {
        var root = new RootCommand("pit: submit Patients to PIT, sync its change feed, search, read, and inspect tokens.");
        foreach (var option in new Option[] { Config, Dev, BaseUrl, Authority, ClientId, KeyFile, DpopKeyFile, Scope, Org, ChildOrg })
        {
            root.Options.Add(option);
        }

        root.Subcommands.Add(SubmitCommand.Build(this));
        root.Subcommands.Add(SyncCommand.Build(this));
        root.Subcommands.Add(ReadCommands.BuildGet(this));
        root.Subcommands.Add(ReadCommands.BuildSearch(this));
        root.Subcommands.Add(TokenCommand.Build(this));
        root.Subcommands.Add(StatusCommand.Build(this));
        root.Subcommands.Add(FnrCommand.Build(this));
        return root;
    }

    /// <summary>Parses and runs; returns the process exit code.</summary>
    public async Task<int> RunAsync(string[] args, CancellationToken cancellationToken)
    {
        var parse = BuildRoot().Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                _context.Error.MarkupLineInterpolated($"[red]{UsageMessage(error)}[/]");
            }

            _context.Error.MarkupLine("Run [bold]pit --help[/] for usage.");
            return ExitCodes.Usage;
        }

        var configuration = new InvocationConfiguration
        {
            Output = _context.Out.Profile.Out.Writer,
            Error = _context.Error.Profile.Out.Writer,
            EnableDefaultExceptionHandler = false,
            // Ctrl+C is wired by Program to the token passed in; a run must not touch process-wide signal handlers.
            ProcessTerminationTimeout = null,
        };
        return await parse.InvokeAsync(configuration, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The parser's message, except where it would name a .NET type: a value that does not parse is explained by the
    /// kind of value the option needs.
    /// </summary>
    private static string UsageMessage(System.CommandLine.Parsing.ParseError error)
    {
        if (error.SymbolResult is System.CommandLine.Parsing.OptionResult { Option: var option } result
            && error.Message.Contains("expected type", StringComparison.Ordinal))
        {
            var type = Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
            var needs = type == typeof(int) || type == typeof(long) ? "a whole number, e.g. 20"
                : type == typeof(TimeSpan) ? "a duration as hh:mm:ss, e.g. 00:05:00"
                : type == typeof(DateTimeOffset) ? "a time, e.g. 2026-01-01T12:00Z"
                : "another value";
            var given = string.Join(' ', result.Tokens.Select(t => t.Value));
            return $"{option.Name} needs {needs}, not '{given}'.";
        }

        return error.Message;
    }

    /// <summary>Runs a command body, turning the failures a user can act on into a message and an exit code.</summary>
    public async Task<int> GuardAsync(Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (CliException e)
        {
            _context.Error.MarkupLineInterpolated($"[red]{e.Message}[/]");
            return e.ExitCode;
        }
        catch (HelseIdTokenException e)
        {
            _context.Error.MarkupLineInterpolated($"[red]Could not get an access token:[/] {e.Message}");
            return ExitCodes.For(e);
        }
        catch (PitApiException e)
        {
            ErrorReport.Write(_context.Error, e);
            return ExitCodes.For(e.StatusCode);
        }
        catch (HttpRequestException e)
        {
            _context.Error.MarkupLineInterpolated($"[red]Could not reach the server:[/] {e.Message} Is it running, and is the base URL (--base-url, PIT_BASE_URL) right?");
            return ExitCodes.Unavailable;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _context.Error.MarkupLineInterpolated($"[red]{e.Message}[/] Check the path and its permissions.");
            return ExitCodes.Usage;
        }
        catch (OperationCanceledException)
        {
            _context.Error.MarkupLine("[yellow]Cancelled.[/]");
            return ExitCodes.Failed;
        }
    }

    /// <summary>The effective settings for this invocation.</summary>
    public CliSettings Settings(ParseResult parse)
    {
        var dev = parse.GetValue(Dev);
        var flags = new CliSettings
        {
            BaseUrl = parse.GetValue(BaseUrl),
            Authority = parse.GetValue(Authority),
            ClientId = parse.GetValue(ClientId),
            KeyFile = parse.GetValue(KeyFile),
            DpopKeyFile = parse.GetValue(DpopKeyFile),
            Scopes = parse.GetValue(Scope),
            OrganisationNumber = parse.GetValue(Org),
            ChildOrganisationNumber = parse.GetValue(ChildOrg),
        };
        return CliSettings.Defaults
            .With(CliSettings.FromFile(_context, parse.GetValue(Config)))
            .With(CliSettings.FromEnvironment(_context))
            .With(dev ? CliSettings.Dev : null)
            .With(flags);
    }

    public async Task<PitClient> CreateClientAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        var options = await Settings(parse).ToClientOptionsAsync(_context, parse.GetValue(Dev), cancellationToken).ConfigureAwait(false);
        options.PrimaryHandler = _context.PrimaryHandler;
        return PitClient.Create(options);
    }
}
