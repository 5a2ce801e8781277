using System.Diagnostics;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>What a finished process wrote and returned.</summary>
public sealed record ProcessResult(int ExitCode, string Output, string Errors)
{
    /// <summary>The non-empty lines of standard error.</summary>
    public IReadOnlyList<string> ErrorLines => Errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Errors}";
}

/// <summary>Runs the built server (<c>dotnet Pit.Server.dll …</c>) or another program as a process, as an operator would.</summary>
public static class ServerCommandLine
{
    /// <summary>Runs <c>dotnet Pit.Server.dll <paramref name="arguments"/></c> in <paramref name="workingDirectory"/>.</summary>
    public static Task<ProcessResult> RunAsync(string workingDirectory, params string[] arguments) =>
        RunProgramAsync("dotnet", workingDirectory, [KillUnderLoad.ServerDll, .. arguments]);

    /// <summary>
    /// Runs <paramref name="program"/> and waits (at most 3 minutes). The environment's ASP.NET Core environment name is
    /// removed, so only the arguments choose it.
    /// </summary>
    public static async Task<ProcessResult> RunProgramAsync(string program, string workingDirectory, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("ASPNETCORE_ENVIRONMENT");
        start.Environment.Remove("DOTNET_ENVIRONMENT");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} did not finish in 3 minutes.");
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>The repository's root folder (the one holding Pit.slnx), found above the test output folder.</summary>
    public static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Pit.slnx")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Pit.slnx not found above the test output folder");
    }
}
