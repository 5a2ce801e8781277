using System.Runtime.CompilerServices;

namespace Pit.Server.Storage.Sqlite;

// Export and retention: old rows leave in bounded batches, each its own short write transaction, so the request
// path's group commits get the writer between them.
internal sealed partial class SqlitePitStore
{
    public async IAsyncEnumerable<AuditEntry> ExportAuditAsync(long from, long to, string? organisation, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = StoredRows.AuditExportQuery("$from", "$to", organisation is null ? null : "$org");
        command.Parameters.AddWithValue("$from", from);
        command.Parameters.AddWithValue("$to", to);
        if (organisation is not null)
        {
            command.Parameters.AddWithValue("$org", organisation);
        }

        await foreach (var entry in StoredRows.StreamAuditAsync(command, cancellationToken))
        {
            yield return entry;
        }
    }

    /// <summary>Nothing to prepare: one table, no partitions.</summary>
    public Task PrepareAuditAsync(long from, long to, CancellationToken cancellationToken) => Task.CompletedTask;

    // Deletes need no fsync of their own either: rows that come back after a power loss are deleted again next run.
    public Task<int> RemoveAuditBeforeAsync(long before, int maxRows, CancellationToken cancellationToken) =>
        DeleteBatchAsync("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $before ORDER BY at LIMIT $limit);", before, maxRows, cancellationToken);

    public Task<int> RemoveProcessedSubmissionsBeforeAsync(long before, int maxRows, CancellationToken cancellationToken) =>
        DeleteBatchAsync(StoredRows.ProcessedSubmissionsDelete("$before", "$limit"), before, maxRows, cancellationToken);

    private Task<int> DeleteBatchAsync(string sql, long before, int maxRows, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: false, async (writer, tx) =>
        {
            await using var delete = Command(writer.Connection, tx, sql);
            delete.Parameters.AddWithValue("$before", before);
            delete.Parameters.AddWithValue("$limit", maxRows);
            return await delete.ExecuteNonQueryAsync(cancellationToken);
        }, cancellationToken);
}
