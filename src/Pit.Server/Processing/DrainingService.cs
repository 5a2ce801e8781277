namespace Pit.Server.Processing;

/// <summary>
/// A writer loop that must outlive the requests feeding it. On shutdown the host first stops the web server, which
/// lets in-flight requests finish; only once every hosted service has stopped (<see cref="StoppedAsync"/>) is the
/// intake closed and what is already queued written, within what is left of <c>Pit:ShutdownTimeout</c>. Closing at
/// <see cref="StopAsync"/> instead would refuse the last requests depending on the order the services stop in.
/// </summary>
internal abstract class DrainingService : BackgroundService, IHostedLifecycleService
{
    /// <summary>Takes no more work; the loop ends once it has written what it holds.</summary>
    protected abstract void CompleteIntake();

    public override Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        CompleteIntake();
        await base.StopAsync(cancellationToken);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
