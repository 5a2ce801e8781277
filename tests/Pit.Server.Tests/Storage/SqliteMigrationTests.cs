using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pit.Server.Storage;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>Upgrading a SQLite file made by an earlier version of the server.</summary>
public sealed class SqliteMigrationTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("pit-migrate-").FullName;

    private string ConnectionString => $"Data Source={Path.Combine(_folder, "pit.db")}";

    [Fact]
    public async Task A_version_1_file_is_migrated_and_its_queued_submission_is_applied_with_the_provenance_it_has()
    {
        var queued = Submissions.Create("999999999", "12345678901");
        await using (var old = new SqliteConnection(ConnectionString))
        {
            await old.OpenAsync();
            await using var create = old.CreateCommand();
            create.CommandText = SqliteSchema.Migrations[0] + "PRAGMA user_version = 1;";
            await create.ExecuteNonQueryAsync();
            await using var insert = old.CreateCommand();
            insert.CommandText = """
                INSERT INTO submissions (id, tenant, client_id, orgnr_child, content, content_hash, keys, accepted_at)
                VALUES ($id, $tenant, 'old-client', '998877665', $content, $hash, $keys, $at);
                """;
            insert.Parameters.AddWithValue("$id", queued.Id.ToByteArray());
            insert.Parameters.AddWithValue("$tenant", queued.Tenant);
            insert.Parameters.AddWithValue("$content", queued.Content);
            insert.Parameters.AddWithValue("$hash", queued.ContentHash);
            insert.Parameters.AddWithValue("$keys", SqlitePitStore.SerializeKeys(queued.Keys));
            insert.Parameters.AddWithValue("$at", queued.AcceptedAt);
            await insert.ExecuteNonQueryAsync();
        }

        await using (var store = new SqlitePitStore(ConnectionString, TimeProvider.System))
        {
            await store.MigrateAsync(CancellationToken.None);
            await store.MigrateAsync(CancellationToken.None);
            Assert.Equal(1, (await store.ApplyPendingAsync(10, CancellationToken.None)).Count);
            var record = (await store.GetSubmissionAsync(queued.Id, CancellationToken.None))!;
            var patient = (await store.GetPatientAsync(record.PatientId!, CancellationToken.None))!;

            using var json = JsonDocument.Parse(patient.Json);
            var provenance = json.RootElement.GetProperty("meta").GetProperty("extension").EnumerateArray()
                .ToDictionary(e => e.GetProperty("url").GetString()!, e => e.GetProperty("valueString").GetString());
            Assert.Equal(
                new Dictionary<string, string?>
                {
                    [ProvenanceExtensions.ParentOrganizationNumber] = "999999999",
                    [ProvenanceExtensions.ChildOrganizationNumber] = "998877665",
                    [ProvenanceExtensions.SourceClientId] = "old-client",
                    [ProvenanceExtensions.SubmissionId] = queued.Id.ToString("D"),
                },
                provenance);
        }

        await using var check = new SqliteConnection(ConnectionString);
        await check.OpenAsync();
        await using var version = check.CreateCommand();
        version.CommandText = "PRAGMA user_version;";
        Assert.Equal((long)SqliteSchema.Version, (long)(await version.ExecuteScalarAsync())!);
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
}
