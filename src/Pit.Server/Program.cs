using Pit.Server.Operability;

// The server, or a command beside it (`migrate`, `backup`, `audit-export`, `--help`, `--version`):
// Operability/ServerCommands.cs.
return await ServerCommands.RunAsync(args, Console.Out, Console.Error);

/// <summary>Entry point; the wiring lives in <see cref="Pit.Server.PitApp"/>.</summary>
public partial class Program;
