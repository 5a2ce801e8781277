using Pit.Cli;
using Spectre.Console;

namespace Pit.Client.Tests.Infrastructure;

/// <summary>Runs <c>pit</c> in-process with captured output, a private environment and a working folder.</summary>
internal sealed class CliRun
{
    private readonly StringWriter _out = new();
    private readonly StringWriter _error = new();

    private CliRun(int exitCode, StringWriter output, StringWriter error)
    {
        ExitCode = exitCode;
        _out = output;
        _error = error;
    }

    public int ExitCode { get; }

    public string Out => _out.ToString();

    public string Error => _error.ToString();

    public override string ToString() => $"exit {ExitCode}\n--- out ---\n{Out}\n--- error ---\n{Error}";

    public static async Task<CliRun> RunAsync(
        string workingDirectory, IEnumerable<string> args, HttpMessageHandler? handler = null, IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellationToken = default)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var context = new CliContext(Console(output), Console(error), name => environment?.GetValueOrDefault(name), workingDirectory, handler);
        var exitCode = await new PitCli(context).RunAsync([.. args], cancellationToken);
        return new CliRun(exitCode, output, error);
    }

    private static IAnsiConsole Console(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 200;
        return console;
    }
}
