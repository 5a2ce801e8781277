using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Processing;

public sealed class ShutdownTests : IDisposable
{
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(10);

    private readonly string _data = Directory.CreateTempSubdirectory("pit-shutdown-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public async Task SIGTERM_under_POST_load_exits_0_within_the_shutdown_timeout_and_every_202_is_applied_after_restart()
    {
        var settings = new Dictionary<string, string?> { ["Pit:ShutdownTimeout"] = ShutdownTimeout.ToString("c") };
        await KillUnderLoad.RunAsync(_data, settings, async server =>
        {
            var (exitCode, elapsed) = await server.TerminateAsync(ShutdownTimeout + TimeSpan.FromSeconds(5));
            Assert.Equal(0, exitCode);
            Assert.True(elapsed < ShutdownTimeout, $"The server should exit within Pit:ShutdownTimeout; took {elapsed}.");
        });
    }
}
