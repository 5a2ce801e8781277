using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// Checkpoints run beside the writer, not inside a commit: a pass copies the WAL into the database file, and once the WAL
/// has grown past its restart size the next commit starts it again from the beginning, so the WAL stays small.
/// </summary>
public sealed class SqliteCheckpointTests : IDisposable
{
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-checkpoint-").FullName;

    private string File => Path.Combine(_folder, "pit.db");

    [Fact]
    public async Task A_pass_copies_the_whole_wal_and_past_the_restart_size_the_next_commit_starts_the_wal_again()
    {
        await using var store = await OpenAsync(TimeProvider.System);

        // About 2.5 times the restart size in WAL frames (64 KiB of content is 16 pages and more).
        var added = 0;
        while (added * 64L * 1024 < SqlitePitStore.WalRestartFrames * 4096L * 5 / 2)
        {
            await store.AddSubmissionsAsync([Large(added.ToString())], None);
            added++;
        }

        var full = await store.CheckpointAsync(None);
        Assert.True(full.Frames >= SqlitePitStore.WalRestartFrames, $"{full.Frames} frames");
        Assert.Equal(full.Frames, full.Backfilled);
        var walSize = new FileInfo(File + "-wal").Length;

        // The next commit writes at the start of the WAL again: the file does not grow, and a pass finds only its frames.
        await store.AddSubmissionsAsync([Large("last")], None);
        var after = await store.CheckpointAsync(None);
        Assert.InRange(after.Frames, 1, 100);
        Assert.Equal(after.Frames, after.Backfilled);
        Assert.Equal(walSize, new FileInfo(File + "-wal").Length);
        Assert.Equal(added + 1, (await store.GetQueueStatisticsAsync(None)).Pending);
    }

    [Fact]
    public async Task The_checkpointer_copies_the_wal_into_the_database_file_on_its_clock()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 12, 0, 0, TimeSpan.Zero));
        await using var store = await OpenAsync(time);
        for (var i = 0; i < 16; i++)
        {
            await store.AddSubmissionsAsync([Large(i.ToString())], None);
        }

        // 1 MiB of content waits in the WAL: SQLite's own checkpoint starts only at WalBackstopPages.
        var before = new FileInfo(File).Length;
        Assert.True(before < 256 * 1024, $"{before} bytes");

        using var checkpointer = new SqliteCheckpointer(store, time, NullLogger<SqliteCheckpointer>.Instance);
        await checkpointer.StartAsync(None);
        try
        {
            // Nothing happens until the clock moves: the file stays as it was.
            await Task.Delay(100);
            Assert.True(new FileInfo(File).Length < 256 * 1024);

            // The service starts its timer on a thread of its own, so the clock is moved on until a pass has run
            // (bounded by the deadline).
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (new FileInfo(File).Length < 1024 * 1024 && DateTime.UtcNow < deadline)
            {
                time.Advance(SqliteCheckpointer.Interval);
                await Task.Delay(10);
            }

            Assert.True(new FileInfo(File).Length >= 1024 * 1024, $"{new FileInfo(File).Length} bytes");
        }
        finally
        {
            await checkpointer.StopAsync(None);
        }
    }

    [Fact]
    public void The_file_system_flush_reports_whether_it_ran()
    {
        // Linux only (syncfs); elsewhere SQLite's own fsync at the end of the pass does all the work.
        Assert.Equal(OperatingSystem.IsLinux(), FileSystemSync.TryFlush(File));
        Assert.False(FileSystemSync.TryFlush(Path.Combine(_folder, "missing", "pit.db")));
    }

    private static NewSubmission Large(string fnr) =>
        Submissions.Create("999999999", fnr) with { Content = System.Security.Cryptography.RandomNumberGenerator.GetBytes(64 * 1024) };

    private async Task<SqlitePitStore> OpenAsync(TimeProvider time)
    {
        var store = new SqlitePitStore($"Data Source={File}", time);
        await store.MigrateAsync(None);
        return store;
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
    }
}
