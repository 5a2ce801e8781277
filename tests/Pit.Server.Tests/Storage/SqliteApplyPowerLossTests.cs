using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>
/// SQLite's apply commits without an fsync: a power loss can undo it, but never a group commit, whose fsync is
/// what a 202 waits for. These tests undo an apply the way a power loss would (the files put back as they were
/// after the last fsynced commit) and check that applying again writes the same Patients.
/// </summary>
public sealed class SqliteApplyPowerLossTests : IDisposable
{
    private const string Tenant = "999999999";
    private static readonly DateTimeOffset Start = new(2026, 12, 5, 12, 0, 0, TimeSpan.Zero);
    private static readonly CancellationToken None = CancellationToken.None;

    private readonly string _folder = Directory.CreateTempSubdirectory("pit-powerloss-").FullName;

    private string File => Path.Combine(_folder, "pit.db");

    [Fact]
    public async Task An_apply_lost_with_the_power_is_redone_with_the_same_patient_ids_versions_and_content()
    {
        var time = new ManualTimeProvider(Start);
        var existing = Submissions.Create(Tenant, "1", gender: "female", family: "Nordmann");
        var batch = new[]
        {
            Submissions.Create(Tenant, "1", gender: "male", family: "Nordmann"),
            Submissions.Create(Tenant, "2", family: "Hansen"),
            Submissions.Create(Tenant, "3", family: "Olsen"),
            Submissions.Create(Tenant, "3", gender: "other", family: "Olsen"),
            Submissions.Create(Tenant, "2", family: "Hansen"),
        };
        byte[] db, wal;
        (Dictionary<Guid, SubmissionRecord> Submissions, Dictionary<string, PatientRecord> Patients) lost;
        await using (var store = await OpenAsync(time))
        {
            await store.AddSubmissionsAsync([existing], None);
            await store.ApplyPendingAsync(10, None);
            time.Advance(TimeSpan.FromSeconds(1));

            // The group commit fsyncs the WAL, and with it the apply before it: this is what survives the power loss.
            await store.AddSubmissionsAsync(batch, None);
            (db, wal) = (await System.IO.File.ReadAllBytesAsync(File), await System.IO.File.ReadAllBytesAsync(File + "-wal"));

            time.Advance(TimeSpan.FromSeconds(1));
            Assert.Equal(batch.Length, (await store.ApplyPendingAsync(10, None)).Count);
            lost = await ReadAsync(store, [existing, .. batch]);
        }

        // The power fails: the WAL frames written after the last fsync never reached the disk.
        SqliteConnection.ClearAllPools();
        await System.IO.File.WriteAllBytesAsync(File, db);
        await System.IO.File.WriteAllBytesAsync(File + "-wal", wal);
        System.IO.File.Delete(File + "-shm");

        time.Advance(TimeSpan.FromMinutes(1));
        await using (var store = await OpenAsync(time))
        {
            Assert.Equal(batch.Length, (await store.GetQueueStatisticsAsync(None)).Pending);
            Assert.Equal(batch.Length, (await store.ApplyPendingAsync(10, None)).Count);
            var redone = await ReadAsync(store, [existing, .. batch]);

            Assert.Equal(
                lost.Submissions.Values.Select(s => (s.Id, s.State, s.PatientId, s.PatientVersion)),
                redone.Submissions.Values.Select(s => (s.Id, s.State, s.PatientId, s.PatientVersion)));
            Assert.Equal([SubmissionState.Applied, SubmissionState.Applied, SubmissionState.Applied, SubmissionState.Applied, SubmissionState.Unchanged],
                batch.Select(s => redone.Submissions[s.Id].State));
            Assert.Equal(lost.Patients.Keys.Order(), redone.Patients.Keys.Order());
            Assert.Equal(3, redone.Patients.Count);
            foreach (var (id, before) in lost.Patients)
            {
                var after = redone.Patients[id];
                Assert.Equal((before.Tenant, before.Version), (after.Tenant, after.Version));

                // Only the time it became visible differs: the redo happened a minute later, and lastUpdated says so.
                Assert.True(after.LastUpdated > before.LastUpdated);
                Assert.Equal(WithoutLastUpdated(before.Json), WithoutLastUpdated(after.Json));
            }
        }
    }

    [Fact]
    public async Task An_apply_lost_with_the_power_and_redone_at_the_same_clock_reading_writes_byte_identical_patients()
    {
        // Nothing but the clock goes into a Patient beyond the durable rows: with the clock held, the redo is exact.
        var time = new ManualTimeProvider(Start);
        var batch = Enumerable.Range(0, 20).Select(i => Submissions.Create(Tenant, $"{i % 7}", gender: i % 2 == 0 ? "female" : "male")).ToArray();
        byte[] db, wal;
        List<PatientRecord> lost;
        await using (var store = await OpenAsync(time))
        {
            await store.AddSubmissionsAsync(batch, None);
            (db, wal) = (await System.IO.File.ReadAllBytesAsync(File), await System.IO.File.ReadAllBytesAsync(File + "-wal"));
            await store.ApplyPendingAsync(8, None);
            await store.ApplyPendingAsync(100, None);
            lost = (await store.SearchAsync(new PatientPageQuery(null, false, null, null, null, 100), None)).Rows.ToList();
        }

        SqliteConnection.ClearAllPools();
        await System.IO.File.WriteAllBytesAsync(File, db);
        await System.IO.File.WriteAllBytesAsync(File + "-wal", wal);
        System.IO.File.Delete(File + "-shm");

        await using (var store = await OpenAsync(time))
        {
            // Other batch boundaries than the first time: versions count submissions, not batches.
            await store.ApplyPendingAsync(100, None);
            var redone = (await store.SearchAsync(new PatientPageQuery(null, false, null, null, null, 100), None)).Rows.ToList();

            Assert.Equal(7, redone.Count);
            Assert.Equal(lost.Select(p => (p.Id, p.Version, p.LastUpdated)), redone.Select(p => (p.Id, p.Version, p.LastUpdated)));
            Assert.All(lost.Zip(redone), pair => Assert.Equal(pair.First.Json, pair.Second.Json));
        }
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<SqlitePitStore> OpenAsync(TimeProvider time)
    {
        var store = new SqlitePitStore($"Data Source={File}", time);
        await store.MigrateAsync(None);
        return store;
    }

    private static async Task<(Dictionary<Guid, SubmissionRecord> Submissions, Dictionary<string, PatientRecord> Patients)> ReadAsync(SqlitePitStore store, IEnumerable<NewSubmission> submissions)
    {
        var records = new Dictionary<Guid, SubmissionRecord>();
        foreach (var s in submissions)
        {
            records.Add(s.Id, (await store.GetSubmissionAsync(s.Id, None))!);
        }

        var patients = (await store.SearchAsync(new PatientPageQuery(Tenant, false, null, null, null, 100), None)).Rows.ToDictionary(p => p.Id);
        return (records, patients);
    }

    private static string WithoutLastUpdated(byte[] json)
    {
        var node = JsonNode.Parse(json)!;
        Assert.NotNull(node["meta"]!["lastUpdated"]);
        node["meta"]!.AsObject().Remove("lastUpdated");
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
