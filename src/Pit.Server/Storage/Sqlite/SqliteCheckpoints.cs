using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Pit.Server.Storage.Sqlite;

/// <summary>What one checkpoint pass saw: frames in the WAL and how many of them are now in the database file.</summary>
internal readonly record struct WalCheckpoint(int Frames, int Backfilled);

/// <summary>
/// Checkpoints off the commit path. SQLite's own automatic checkpoint runs inside the commit that crosses its threshold,
/// on the one writer connection: every group commit waits while it copies the WAL into the database file (about 50 ms
/// for 8,000 pages here, the POST p99 of docs/PERFORMANCE.md, "Issue 18"). Here a pass copies on a read connection
/// beside the writer (a PASSIVE checkpoint waits for nobody). The WAL starts again from its beginning only when a write
/// transaction finds it wholly copied, which a copy beside a busy writer never achieves, so once the WAL has reached
/// <see cref="WalRestartFrames"/> the pass also copies the frames committed while it ran, with the write lock held.
/// That last step ends with SQLite's fsync of the database file, which would also have to write out every page the
/// copy beside the writer left in the page cache (SQLite syncs the file only after a copy that reached the end of the
/// WAL); so before it the pass flushes them itself, still beside the writer (<see cref="FileSystemSync"/>), and the
/// write lock is held for the tail alone (p50 5 ms against 14 ms). The writer's automatic checkpoint stays as the
/// backstop at <see cref="WalBackstopPages"/>, for when no pass runs (the server's commands) or readers keep the WAL
/// from restarting.
/// </summary>
internal sealed partial class SqlitePitStore
{
    /// <summary>WAL frames from which a pass also copies the tail under the write lock so that the WAL restarts (8 MiB).</summary>
    internal const int WalRestartFrames = 2000;

    /// <summary>
    /// WAL pages after which a commit checkpoints by itself (64 MiB of 4 KiB pages): the bound on the WAL when the
    /// checkpointer's passes (<see cref="SqliteCheckpointer"/>) do not run or cannot restart it.
    /// </summary>
    internal const int WalBackstopPages = 16_000;

    /// <summary>
    /// One pass: copies the WAL into the database file beside the writer, then, if the WAL has reached
    /// <see cref="WalRestartFrames"/>, flushes the copied pages to disk and copies what was committed meanwhile with
    /// the write lock held.
    /// </summary>
    public async Task<WalCheckpoint> CheckpointAsync(CancellationToken cancellationToken)
    {
        var bulk = await ReadAsync(statements => PassiveCheckpointAsync(statements.Connection, cancellationToken), cancellationToken);
        if (bulk.Frames < WalRestartFrames)
        {
            return bulk;
        }

        FileSystemSync.TryFlush(Location);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var writer = await WriterAsync(cancellationToken);
            return await PassiveCheckpointAsync(writer.Connection, cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static async Task<WalCheckpoint> PassiveCheckpointAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        // Not kept prepared: a PRAGMA takes effect when it is prepared.
        await using var command = Command(connection, null, "PRAGMA wal_checkpoint(PASSIVE);");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);

        // -1 for both when the file is not in WAL mode (an in-memory database).
        return new WalCheckpoint(Math.Max(0, reader.GetInt32(1)), Math.Max(0, reader.GetInt32(2)));
    }
}

/// <summary>Runs <see cref="SqlitePitStore.CheckpointAsync"/> every <see cref="Interval"/>, for as long as the host runs.</summary>
internal sealed class SqliteCheckpointer(SqlitePitStore store, TimeProvider time, ILogger<SqliteCheckpointer> logger) : BackgroundService
{
    /// <summary>
    /// Between passes. Under the heaviest POST load measured here the WAL grows by about 3,000 pages in this time, so a
    /// pass copies about 12 MiB beside the writer and holds the write lock for the few hundred pages of its own run.
    /// </summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private readonly StoreOutageLog _outage = new(logger, "Checkpointing the SQLite WAL", time);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await store.CheckpointAsync(stoppingToken);
                    _outage.Succeeded();
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    // The next tick tries again; meanwhile the writer's own checkpoint bounds the WAL.
                    _outage.Failed(ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}

/// <summary>
/// Writes out the dirty pages of the file system that holds a file (Linux <c>syncfs</c>), without opening the file
/// itself: closing any descriptor of a SQLite database drops every POSIX lock the process holds on it, SQLite's
/// included. Elsewhere, or when it fails, nothing happens and SQLite's own fsync does the work later.
/// </summary>
internal static class FileSystemSync
{
    private const int ReadOnlyCloseOnExec = 0x80000; // O_RDONLY | O_CLOEXEC

    /// <summary>Flushes the file system of <paramref name="file"/>'s folder; false where that is not possible.</summary>
    public static bool TryFlush(string file)
    {
        if (!OperatingSystem.IsLinux() || Path.GetDirectoryName(file) is not { Length: > 0 } folder)
        {
            return false;
        }

        var descriptor = Open(folder, ReadOnlyCloseOnExec);
        if (descriptor < 0)
        {
            return false;
        }

        try
        {
            return SyncFs(descriptor) == 0;
        }
        finally
        {
            _ = Close(descriptor);
        }
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "syncfs", SetLastError = true)]
    private static extern int SyncFs(int descriptor);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int descriptor);
}
