using Spectre.Console;

namespace Pit.Cli;

/// <summary>What a run of <c>pit</c> talks to: its two consoles, its environment and its working directory.</summary>
internal sealed class CliContext
{
    public CliContext(IAnsiConsole output, IAnsiConsole error, Func<string, string?> environment, string workingDirectory, HttpMessageHandler? primaryHandler = null)
    {
        Out = output;
        Error = error;
        Environment = environment;
        WorkingDirectory = workingDirectory;
        PrimaryHandler = primaryHandler;
    }

    /// <summary>Results and progress.</summary>
    public IAnsiConsole Out { get; }

    /// <summary>Errors and diagnostics.</summary>
    public IAnsiConsole Error { get; }

    public Func<string, string?> Environment { get; }

    public string WorkingDirectory { get; }

    /// <summary>The innermost HTTP handler; null for real sockets. Tests put a stub here.</summary>
    public HttpMessageHandler? PrimaryHandler { get; }

    /// <summary>Data that must reach stdout byte for byte (JSON, NDJSON, a raw token): no markup, no wrapping.</summary>
    public void WriteData(string text) => Out.Profile.Out.Writer.WriteLine(text);

    public string ResolvePath(string path) => Path.GetFullPath(path, WorkingDirectory);

    public static CliContext FromProcess()
    {
        var output = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        var error = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        // Redirected output (cron, CI, a pipe) goes to logs: do not wrap messages at 80 columns there.
        if (Console.IsOutputRedirected)
        {
            output.Profile.Width = 240;
        }

        if (Console.IsErrorRedirected)
        {
            error.Profile.Width = 240;
        }

        return new CliContext(output, error, System.Environment.GetEnvironmentVariable, Directory.GetCurrentDirectory());
    }
}
