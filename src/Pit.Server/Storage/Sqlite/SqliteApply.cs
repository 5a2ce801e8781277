using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pit.Server.Processing;

namespace Pit.Server.Storage.Sqlite;

/// <summary>
/// Applying the queue: one write transaction (SQLite has one writer, so it is serial by nature) claims the queued
/// rows, reads the clock and the matched Patients, lets <see cref="ApplyPlanner"/> decide, and writes the plan.
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
        InWriteTransactionAsync(async (writer, tx) =>
        {
            var pending = new List<PendingSubmission>();
            await using (var claim = Command(writer, tx, ClaimSql))
            {
                claim.Parameters.AddWithValue("$max", maxCount);
                claim.Parameters.AddWithValue("$bytes", maxBytes);
                await using var reader = await claim.ExecuteReaderAsync(cancellationToken);
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

            var clock = Convert.ToInt64(await ScalarAsync(writer, tx, "SELECT coalesce(max(last_updated), 0) FROM patients;", cancellationToken));
            IReadOnlyList<ExistingPatient> existing;
            await using (var load = Command(writer, tx, MatchedPatientsSql))
            {
                load.Parameters.AddWithValue("$keys", JsonSerializer.Serialize(pending.SelectMany(s => s.Keys.Select(k => new[] { s.Tenant, k.System, k.Value }))));
                await using var reader = await load.ExecuteReaderAsync(cancellationToken);
                existing = await StoredRows.MatchedPatientsAsync(reader, cancellationToken);
            }

            var plan = ApplyPlanner.Plan(pending, existing, clock, _time);
            await using var statements = new PlanStatements(writer, tx);
            await statements.ExecuteAsync(plan, cancellationToken);
            return new AppliedBatch(pending.ConvertAll(s => s.Taken));
        }, cancellationToken);

    internal static string SerializeKeys(IReadOnlyList<PatientKey> keys) =>
        JsonSerializer.Serialize(keys.Select(k => new[] { k.System, k.Value }));

    internal static IReadOnlyList<PatientKey> DeserializeKeys(string json) =>
        JsonSerializer.Deserialize<string[][]>(json)!.Select(k => new PatientKey(k[0], k[1])).ToList();

    /// <summary>The statements that write a plan, prepared once per batch and reused for every row.</summary>
    private sealed class PlanStatements : IAsyncDisposable
    {
        private readonly SqliteCommand _upsert;
        private readonly SqliteCommand _deleteKeys;
        private readonly SqliteCommand _insertKey;
        private readonly SqliteCommand _touch;
        private readonly SqliteCommand _mark;

        public PlanStatements(SqliteConnection connection, SqliteTransaction tx)
        {
            _upsert = Prepare(connection, tx, """
                INSERT INTO patients (id, tenant, version, last_updated, content_hash, last_seq, json)
                VALUES ($id, $tenant, $version, $lu, $hash, $seq, $json)
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                    content_hash = excluded.content_hash, last_seq = excluded.last_seq, json = excluded.json;
                """, "$id", "$tenant", "$version", "$lu", "$hash", "$seq", "$json");
            _deleteKeys = Prepare(connection, tx, "DELETE FROM patient_keys WHERE patient_id = $id;", "$id");
            _insertKey = Prepare(connection, tx,
                "INSERT INTO patient_keys (tenant, system, value, patient_id) VALUES ($tenant, $system, $value, $id);",
                "$tenant", "$system", "$value", "$id");
            _touch = Prepare(connection, tx, "UPDATE patients SET last_seq = max(last_seq, $seq) WHERE id = $id;", "$seq", "$id");
            _mark = Prepare(connection, tx, $"""
                UPDATE submissions SET state = $state, processed_at = $now, patient_id = $pid, patient_version = $version,
                    reason = $reason, content = {SubmissionStateSql.RetainedContent("$state", "content")}
                WHERE seq = $seq;
                """, "$state", "$now", "$pid", "$version", "$reason", "$seq");
        }

        public async Task ExecuteAsync(ApplyPlan plan, CancellationToken cancellationToken)
        {
            foreach (var p in plan.Writes)
            {
                await RunAsync(_upsert, cancellationToken, p.Id, p.Tenant, p.Version, p.LastUpdated, p.ContentHash, p.LastSequence, p.Json);
                if (p.MayHaveStoredKeys)
                {
                    await RunAsync(_deleteKeys, cancellationToken, p.Id);
                }

                foreach (var key in p.Keys)
                {
                    await RunAsync(_insertKey, cancellationToken, p.Tenant, key.System, key.Value, p.Id);
                }
            }

            foreach (var t in plan.Touches)
            {
                await RunAsync(_touch, cancellationToken, t.LastSequence, t.PatientId);
            }

            // Here a submission whose planning threw ends as Failed at once: SQLite keeps no attempt count.
            foreach (var o in plan.Outcomes)
            {
                await RunAsync(_mark, cancellationToken, (int)o.State, o.ProcessedAt, o.PatientId, o.Version, o.Reason, o.Sequence);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var command in new[] { _upsert, _deleteKeys, _insertKey, _touch, _mark })
            {
                await command.DisposeAsync();
            }
        }

        private static SqliteCommand Prepare(SqliteConnection connection, SqliteTransaction tx, string sql, params string[] parameters)
        {
            var command = Command(connection, tx, sql);
            foreach (var name in parameters)
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            return command;
        }

        private static Task<int> RunAsync(SqliteCommand command, CancellationToken cancellationToken, params object?[] values)
        {
            for (var i = 0; i < values.Length; i++)
            {
                command.Parameters[i].Value = values[i] ?? DBNull.Value;
            }

            return command.ExecuteNonQueryAsync(cancellationToken);
        }
    }
}
