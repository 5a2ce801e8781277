using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Npgsql;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Tests.Infrastructure;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>One store instance (one process's view) through the interfaces the server uses.</summary>
internal sealed record StoreUnderTest(
    IStoreMigrator Migrator, ISubmissionQueueStore Queue, IPatientFeedStore Feed, ISharedSecretStore Secrets, IAuditStore Audit, IStoreHealth Health,
    IAuditExportStore Export, IRetentionStore Retention)
{
    /// <summary>Every interface of one engine instance.</summary>
    public static StoreUnderTest Of<TEngine>(TEngine engine)
        where TEngine : IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IStoreHealth, IAuditExportStore, IRetentionStore =>
        new(engine, engine, engine, engine, engine, engine, engine, engine);
}

/// <summary>One empty database of one engine for one test; the stores opened over it are disposed with it.</summary>
internal abstract class StoreTestDatabase : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _stores = [];

    /// <summary>Whether several store instances (processes) may work over this database at once.</summary>
    public abstract bool SupportsSeveralInstances { get; }

    /// <summary>A new, initialized store instance over this database.</summary>
    public async Task<StoreUnderTest> OpenStoreAsync(TimeProvider? time = null)
    {
        var (store, engine) = Create(time ?? TimeProvider.System);
        _stores.Add(engine);
        await store.Migrator.MigrateAsync(CancellationToken.None);
        return store;
    }

    /// <summary>
    /// Stores <paramref name="earlier"/> so that it gets a lower acceptance sequence than anything accepted during
    /// <paramref name="meanwhile"/>, yet becomes visible only after it (a slow group commit on another instance).
    /// </summary>
    public abstract Task AcceptLateAsync(NewSubmission earlier, Func<Task> meanwhile);

    protected abstract (StoreUnderTest Store, IAsyncDisposable Engine) Create(TimeProvider time);

    protected static (StoreUnderTest, IAsyncDisposable) Opened<TEngine>(TEngine engine)
        where TEngine : IStoreMigrator, ISubmissionQueueStore, IPatientFeedStore, ISharedSecretStore, IAuditStore, IStoreHealth, IAuditExportStore, IRetentionStore, IAsyncDisposable =>
        (StoreUnderTest.Of(engine), engine);

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var store in _stores)
        {
            await store.DisposeAsync();
        }
    }
}

internal sealed class SqliteTestDatabase : StoreTestDatabase
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-store-").FullName;

    public string ConnectionString => $"Data Source={Path.Combine(_folder, "pit.db")}";

    public override bool SupportsSeveralInstances => false;

    protected override (StoreUnderTest, IAsyncDisposable) Create(TimeProvider time) => Opened(new SqlitePitStore(ConnectionString, time));

    public override async Task AcceptLateAsync(NewSubmission earlier, Func<Task> meanwhile)
    {
        // SQLite has one writer, so an open group commit cannot overlap another; insert below the lowest sequence instead.
        await meanwhile();
        await using var connection = new SqliteConnection(ConnectionString);
        await connection.OpenAsync();
        await using var insert = connection.CreateCommand();
        insert.CommandText = """
            INSERT INTO submissions (seq, id, tenant, client_id, orgnr_child, content, content_hash, keys, accepted_at)
            VALUES ((SELECT min(seq) - 1 FROM submissions), $id, $tenant, $client, NULL, $content, $hash, $keys, $at);
            """;
        insert.Parameters.AddWithValue("$id", earlier.Id.ToByteArray());
        insert.Parameters.AddWithValue("$tenant", earlier.Tenant);
        insert.Parameters.AddWithValue("$client", earlier.ClientId);
        insert.Parameters.AddWithValue("$content", earlier.Content);
        insert.Parameters.AddWithValue("$hash", earlier.ContentHash);
        insert.Parameters.AddWithValue("$keys", SqlitePitStore.SerializeKeys(earlier.Keys));
        insert.Parameters.AddWithValue("$at", earlier.AcceptedAt);
        await insert.ExecuteNonQueryAsync();
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal sealed class PostgresTestDatabase(string connectionString, PostgresStoreOptions? options = null) : StoreTestDatabase
{
    public string ConnectionString { get; } = connectionString;

    public override bool SupportsSeveralInstances => true;

    /// <summary>
    /// The engine as a server runs it: each apply is followed by a sequencer tick, as the leader's would follow it
    /// (PostgresSequencer), so a store's contract is apply and stamp together.
    /// </summary>
    protected override (StoreUnderTest, IAsyncDisposable) Create(TimeProvider time)
    {
        var engine = new PostgresPitStore(PostgresPitStore.CreateDataSource(ConnectionString), time, options, ownsDataSource: true);
        var (store, disposable) = Opened(engine);
        return (store with { Queue = new StampAfterApply(engine) }, disposable);
    }

    /// <summary>The queue of <paramref name="engine"/>, with the versions of every apply stamped before it returns.</summary>
    private sealed class StampAfterApply(PostgresPitStore engine) : ISubmissionQueueStore
    {
        public Task AddSubmissionsAsync(IReadOnlyList<NewSubmission> batch, CancellationToken cancellationToken) =>
            engine.AddSubmissionsAsync(batch, cancellationToken);

        public Task<SubmissionRecord?> GetSubmissionAsync(Guid id, CancellationToken cancellationToken) =>
            engine.GetSubmissionAsync(id, cancellationToken);

        public Task<QueueStatistics> GetQueueStatisticsAsync(CancellationToken cancellationToken) =>
            engine.GetQueueStatisticsAsync(cancellationToken);

        public async Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken)
        {
            var batch = await engine.ApplyPendingAsync(maxCount, maxBytes, cancellationToken);
            await engine.StampPendingAsync(cancellationToken);
            return batch;
        }
    }

    public override async Task AcceptLateAsync(NewSubmission earlier, Func<Task> meanwhile)
    {
        // A group commit that has inserted (and so drawn its sequence numbers) but not committed yet.
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var tx = await connection.BeginTransactionAsync();
        await using (var insert = new NpgsqlBatch(connection, tx) { BatchCommands = { PostgresPitStore.InsertSubmissionCommand(earlier) } })
        {
            await insert.ExecuteNonQueryAsync();
        }

        await meanwhile();
        await tx.CommitAsync();
    }

    public static async Task<PostgresTestDatabase> CreateAsync(PostgresServer server, PostgresStoreOptions? options = null) =>
        new(await server.CreateDatabaseAsync(), options);
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private long _ticks = start.UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Set(DateTimeOffset time) => Interlocked.Exchange(ref _ticks, time.UtcTicks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

/// <summary>Builds submissions the way the accept path does: canonical content and its SHA-256.</summary>
internal static class Submissions
{
    public const string Fnr = "urn:oid:2.16.578.1.12.4.1.4.1";
    public const string DNumber = "urn:oid:2.16.578.1.12.4.1.4.2";

    public static NewSubmission Create(string tenant, string fnr, string gender = "female", string? family = null, PatientKey[]? extraKeys = null, long? acceptedAt = null)
    {
        var keys = new List<PatientKey> { new(Fnr, fnr) };
        keys.AddRange(extraKeys ?? []);
        var identifiers = string.Join(',', keys.Select(k => $$"""{"system":"{{k.System}}","value":"{{k.Value}}"}"""));
        var name = family is null ? "" : $$""","name":[{"family":"{{family}}"}]""";
        return FromContent(tenant, $$"""{"resourceType":"Patient","identifier":[{{identifiers}}]{{name}},"gender":"{{gender}}"}""", keys, acceptedAt);
    }

    public static NewSubmission FromContent(string tenant, string json, IReadOnlyList<PatientKey> keys, long? acceptedAt = null)
    {
        var content = Encoding.UTF8.GetBytes(json);
        return new NewSubmission(
            Guid.NewGuid(), tenant, "client-1", null, content, SHA256.HashData(content), keys,
            acceptedAt ?? FeedTime.FromDateTimeOffset(DateTimeOffset.UtcNow));
    }
}
