using System.Runtime.InteropServices;
using Pit.Cli;

using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancellation.Cancel();
};

// systemd, containers and kill stop a process with SIGTERM: stop like Ctrl-C, so a following sync prints its summary
// and removes its lock file instead of dying where it stands.
using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    cancellation.Cancel();
});

return await new PitCli(CliContext.FromProcess()).RunAsync(args, cancellation.Token);
