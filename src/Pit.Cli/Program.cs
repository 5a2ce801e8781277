using Pit.Cli;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

return await new PitCli(CliContext.FromProcess()).RunAsync(args, cancellation.Token);
