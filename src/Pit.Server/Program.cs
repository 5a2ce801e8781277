using Pit.Server;

var app = PitApp.Create(args);
await app.RunAsync();

/// <summary>Entry point; the wiring lives in <see cref="PitApp"/>.</summary>
public partial class Program;
