using Spectre.Console;

namespace Pit.Cli;

/// <summary>What a run of <c>pit</c> talks to: its two consoles, its environment and its working directory.</summary>
internal sealed class CliContext
{
    public CliContext(IAnsiConsole output, IAnsiConsole error, Func<string, string?> environment, string workingDirectory)
    {
        Out = output;
        Error = error;
        Environment = environment;
        WorkingDirectory = workingDirectory;
    }

    /// <summary>Results and progress.</summary>
    public IAnsiConsole Out { get; }

    /// <summary>Errors and diagnostics.</summary>
    public IAnsiConsole Error { get; }

    public Func<string, string?> Environment { get; }

    public string WorkingDirectory { get; }

    /// <summary>Data that must reach stdout byte for byte (JSON, NDJSON, a raw token): no markup, no wrapping.</summary>
    public void WriteData(string text) => Out.Profile.Out.Writer.WriteLine(text);

    public string ResolvePath(string path) => Path.GetFullPath(path, WorkingDirectory);

    public static CliContext FromProcess() => new(
        AnsiConsole.Console,
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) }),
        System.Environment.GetEnvironmentVariable,
        Directory.GetCurrentDirectory());
}
