using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pit.Server.Upsert;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// Applying the queue: one write transaction (SQLite has one writer, so it is serial by nature) claims the queued
/// rows, reads the clock and the matched Patients, lets <see cref="ApplyPlanner"/> decide, and writes the plan.
/// <para>
/// The transaction commits without an fsync of its own. Everything it writes follows from rows that are already durable
/// (the submissions, each fsynced by its group commit before its 202, and the Patients of earlier applies), and the
/// planner derives a new Patient's id from its submission's id, so a power loss that undoes the apply leaves the
/// submissions queued, and applying them again writes the same Patients under the same ids and versions. WAL frames
/// reach the disk in order, so the next group commit's fsync makes the apply durable too (docs/OPERATIONS.md).
/// </para>
/// </summary>
internal sealed partial class SqlitePitStore
{
    private static readonly string ClaimSql = $"""
        SELECT seq, tenant, content, content_hash, keys, id, accepted_at, {StoredRows.ProvenanceColumns} FROM submissions
        WHERE seq IN ({SubmissionStateSql.ClaimWithinBytes($"SELECT seq, length(content) AS size FROM submissions WHERE state = {SubmissionStateSql.Queued} ORDER BY seq LIMIT $max", "$bytes")})
        ORDER BY seq;
        """;

    // The batch's identifiers as one JSON array of [tenant, system, value]: SQLite has no array parameters.
    private static readonly string MatchedPatientsSql = StoredRows.MatchedPatientsQuery("""
        SELECT m.patient_id FROM json_each($keys) j
        JOIN patient_keys m ON m.tenant = json_extract(j.value, '$[0]') AND m.system = json_extract(j.value, '$[1]')
            AND m.value = json_extract(j.value, '$[2]')
        """);

    public Task<AppliedBatch> ApplyPendingAsync(int maxCount, long maxBytes, CancellationToken cancellationToken) =>
        InWriteTransactionAsync(durable: false, async (writer, tx) =>
        {
            var pending = new List<PendingSubmission>();
            using (var claim = writer.Get(ClaimSql, tx, "$max", "$bytes"))
            {
                await using var reader = await claim.With(maxCount, maxBytes).ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    var id = new Guid((byte[])reader[5]);
                    pending.Add(new PendingSubmission(
                        reader.GetInt64(0), reader.GetString(1), (byte[])reader[2], (byte[])reader[3], DeserializeKeys(reader.GetString(4)),
                        new TakenSubmission(id, reader.GetInt64(6), reader.GetString(1)),
                        StoredRows.Provenance(id, reader.GetString(1), reader, 7)));
                }
            }

            if (pending.Count == 0)
            {
                return AppliedBatch.Empty;
            }

            long clock;
            using (var read = writer.Get("SELECT coalesce(max(last_updated), 0) FROM patients;", tx))
            {
                clock = Convert.ToInt64(await read.Command.ExecuteScalarAsync(cancellationToken));
            }

            IReadOnlyList<ExistingPatient> existing;
            using (var load = writer.Get(MatchedPatientsSql, tx, "$keys"))
            {
                var keys = JsonSerializer.Serialize(pending.SelectMany(s => s.Keys.Select(k => new[] { s.Tenant, k.System, k.Value })));
                await using var reader = await load.With(keys).ExecuteReaderAsync(cancellationToken);
                existing = await StoredRows.MatchedPatientsAsync(reader, cancellationToken);
            }

            var plan = ApplyPlanner.Plan(pending, existing, clock, _time);
            await WritePlanAsync(writer, tx, plan, cancellationToken);
            return new AppliedBatch(pending.ConvertAll(s => s.Taken));
        }, cancellationToken);

    internal static string SerializeKeys(IReadOnlyList<PatientKey> keys) =>
        JsonSerializer.Serialize(keys.Select(k => new[] { k.System, k.Value }));

    internal static IReadOnlyList<PatientKey> DeserializeKeys(string json) =>
        JsonSerializer.Deserialize<string[][]>(json)!.Select(k => new PatientKey(k[0], k[1])).ToList();

    private const string UpsertPatientSql = """
        INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
        VALUES ($id, $tenant, $version, $lu, $hash, $seq, $json)
        ON CONFLICT (id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
            content_hash = excluded.content_hash, last_seq = excluded.last_seq, json = excluded.json;
        """;

    private const string DeleteKeysSql = "DELETE FROM patient_keys WHERE patient_id = $id;";

    private const string InsertKeySql = "INSERT INTO patient_keys (tenant, system, value, patient_id) VALUES ($tenant, $system, $value, $id);";

    private const string TouchSql = "UPDATE patients SET last_seq = max(last_seq, $seq) WHERE id = $id;";

    private static readonly string MarkSql = $"""
        UPDATE submissions SET state = $state, processed_at = $now, patient_id = $pid, patient_version = $version,
            reason = $reason, content = {SubmissionStateSql.RetainedContent("$state", "content")}
        WHERE seq = $seq;
        """;

    /// <summary>Writes a plan with the writer's prepared statements, each bound anew for every row.</summary>
    private static async Task WritePlanAsync(SqliteStatements writer, SqliteTransaction tx, ApplyPlan plan, CancellationToken cancellationToken)
    {
        using var upsert = writer.Get(UpsertPatientSql, tx, "$id", "$tenant", "$version", "$lu", "$hash", "$seq", "$json");
        using var deleteKeys = writer.Get(DeleteKeysSql, tx, "$id");
        using var insertKey = writer.Get(InsertKeySql, tx, "$tenant", "$system", "$value", "$id");
        foreach (var p in plan.Writes)
        {
            await upsert.With(p.Id, p.Tenant, p.Version, p.LastUpdated, p.ContentHash, p.LastSequence, p.Json).ExecuteNonQueryAsync(cancellationToken);
            if (p.MayHaveStoredKeys)
            {
                await deleteKeys.With(p.Id).ExecuteNonQueryAsync(cancellationToken);
            }

            foreach (var key in p.Keys)
            {
                await insertKey.With(p.Tenant, key.System, key.Value, p.Id).ExecuteNonQueryAsync(cancellationToken);
            }
        }

        if (plan.Touches.Count > 0)
        {
            using var touch = writer.Get(TouchSql, tx, "$seq", "$id");
            foreach (var t in plan.Touches)
            {
                await touch.With(t.LastSequence, t.PatientId).ExecuteNonQueryAsync(cancellationToken);
            }
        }

        // Here a submission whose planning threw ends as Failed at once: SQLite keeps no attempt count.
        using var mark = writer.Get(MarkSql, tx, "$state", "$now", "$pid", "$version", "$reason", "$seq");
        foreach (var o in plan.Outcomes)
        {
            await mark.With((int)o.State, o.ProcessedAt, o.PatientId, o.Version, o.Reason, o.Sequence).ExecuteNonQueryAsync(cancellationToken);
        }
    }
}
