using System.Data;
using System.Data.Common;
using System.Globalization;
using Pit.Server.Upsert;

namespace Pit.Server.Storage;

/// <summary>Row readers shared by the engines, so their queries return the same columns in the same order.</summary>
internal static class StoredRows
{
    /// <summary>The submission columns every engine selects, in this order.</summary>
    public const string SubmissionColumns = "tenant, seq, state, accepted_at, processed_at, patient_id, patient_version, reason";

    /// <summary>Reads a row of <see cref="SubmissionColumns"/>.</summary>
    public static SubmissionRecord Submission(Guid id, DbDataReader reader) => new(
        id, reader.GetString(0), reader.GetInt64(1), (SubmissionState)Convert.ToInt32(reader.GetValue(2), CultureInfo.InvariantCulture),
        reader.GetInt64(3),
        reader.IsDBNull(4) ? null : reader.GetInt64(4),
        reader.IsDBNull(5) ? null : reader.GetString(5),
        reader.IsDBNull(6) ? null : reader.GetInt32(6),
        reader.IsDBNull(7) ? null : reader.GetString(7));

    /// <summary>The submission columns of its provenance besides id and tenant, in this order.</summary>
    public const string ProvenanceColumns = "client_id, orgnr_child, client_name";

    /// <summary>
    /// The provenance of a claimed submission whose claim query selects <see cref="ProvenanceColumns"/> from column
    /// <paramref name="first"/> on.
    /// </summary>
    public static SubmissionProvenance Provenance(Guid id, string tenant, DbDataReader reader, int first) => new(
        id, tenant,
        reader.IsDBNull(first + 1) ? null : reader.GetString(first + 1),
        reader.GetString(first),
        reader.IsDBNull(first + 2) ? null : reader.GetString(first + 2));

    /// <summary>The Patient columns every engine selects, in this order.</summary>
    public const string PatientColumns = "id, tenant, version, last_updated, json";

    /// <summary>Reads a row of <see cref="PatientColumns"/>.</summary>
    public static PatientRecord Patient(DbDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3), reader.GetFieldValue<byte[]>(4));

    /// <summary>The columns of a keyset page (<see cref="KeysetQuery"/>): the Patient columns with the JSON's byte length before the JSON.</summary>
    public const string PatientPageColumns = "id, tenant, version, last_updated, CAST(length(json) AS BIGINT), json";

    /// <summary>
    /// Runs <paramref name="command"/> (a <see cref="KeysetQuery"/> for <paramref name="query"/>) and reads rows while
    /// they fit the page: up to <see cref="PatientPageQuery.Limit"/> rows whose JSON comes to at most
    /// <see cref="PatientPageQuery.MaxBytes"/> (the first row always). Columns are read in order (sequential access):
    /// a row's size is looked at before its JSON, and the JSON of the row that does not fit is never loaded.
    /// </summary>
    public static async Task<PatientPage> PatientPageAsync(DbCommand command, PatientPageQuery query, CancellationToken cancellationToken)
    {
        var rows = new List<PatientRecord>(Math.Min(query.Limit, 64));
        long bytes = 0;
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetString(0);
            var tenant = reader.GetString(1);
            var version = reader.GetInt32(2);
            var lastUpdated = reader.GetInt64(3);
            var size = reader.GetInt64(4);
            if (rows.Count == query.Limit || (rows.Count > 0 && bytes + size > query.MaxBytes))
            {
                return new PatientPage(rows, More: true);
            }

            rows.Add(new PatientRecord(id, tenant, version, lastUpdated, reader.GetFieldValue<byte[]>(5)));
            bytes += size;
        }

        return new PatientPage(rows, More: false);
    }

    /// <summary>The audit columns every engine selects, in this order.</summary>
    public const string AuditColumns = "at, action, client_id, organisation, orgnr_child, submission_id, patient_ids, status, outcome";

    /// <summary>Runs <paramref name="command"/> (a select of <see cref="AuditColumns"/>) and reads every row.</summary>
    public static async Task<IReadOnlyList<AuditEntry>> AuditAsync(DbCommand command, CancellationToken cancellationToken)
    {
        var result = new List<AuditEntry>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(Audit(reader));
        }

        return result;
    }

    /// <summary>Runs <paramref name="command"/> (a select of <see cref="AuditColumns"/>) and streams its rows.</summary>
    public static async IAsyncEnumerable<AuditEntry> StreamAuditAsync(DbCommand command, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return Audit(reader);
        }
    }

    /// <summary>Reads a row of <see cref="AuditColumns"/>.</summary>
    public static AuditEntry Audit(DbDataReader reader) => new(
        reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
        reader.IsDBNull(4) ? null : reader.GetString(4),
        reader.IsDBNull(5) ? null : reader.GetValue(5) as Guid? ?? Guid.Parse(reader.GetString(5)),
        reader.IsDBNull(6) ? null : reader.GetString(6),
        reader.GetInt32(7), reader.GetString(8));

    /// <summary>
    /// The audit page query: newest first, optionally for one organisation; engines supply placeholders. Ordered by
    /// time (then id), which both engines index and which PostgreSQL's day partitions are laid out by.
    /// </summary>
    public static string AuditQuery(string? organisationParameter, string limitParameter) => string.Concat(
        $"SELECT {AuditColumns} FROM audit_log",
        organisationParameter is null ? "" : $" WHERE organisation = {organisationParameter}",
        $" ORDER BY at DESC, id DESC LIMIT {limitParameter};");

    /// <summary>The export query: entries in [from, to), oldest first, optionally for one organisation.</summary>
    public static string AuditExportQuery(string fromParameter, string toParameter, string? organisationParameter) => string.Concat(
        $"SELECT {AuditColumns} FROM audit_log WHERE at >= {fromParameter} AND at < {toParameter}",
        organisationParameter is null ? "" : $" AND organisation = {organisationParameter}",
        " ORDER BY at, id;");

    /// <summary>
    /// Deletes up to <paramref name="limitParameter"/> processed submissions processed before
    /// <paramref name="beforeParameter"/>, oldest first, over the partial index on processed_at (<see cref="ProcessedSubmissionsIndex"/>).
    /// </summary>
    public static string ProcessedSubmissionsDelete(string beforeParameter, string limitParameter) => $"""
        DELETE FROM submissions WHERE seq IN (
            SELECT seq FROM submissions WHERE state <> {SubmissionStateSql.Queued} AND processed_at < {beforeParameter}
            ORDER BY processed_at LIMIT {limitParameter});
        """;

    /// <summary>The index the submission retention deletes by; both engines create it in their second schema step.</summary>
    public static readonly string ProcessedSubmissionsIndex =
        $"CREATE INDEX submissions_processed ON submissions (processed_at) WHERE state <> {SubmissionStateSql.Queued};";

    /// <summary>The count and oldest acceptance time of the queued submissions (both over the partial queue index).</summary>
    public static readonly string QueueStatisticsQuery = $"""
        SELECT (SELECT count(*) FROM submissions WHERE state = {SubmissionStateSql.Queued}),
               (SELECT accepted_at FROM submissions WHERE state = {SubmissionStateSql.Queued} ORDER BY seq LIMIT 1);
        """;

    /// <summary>Reads the single row of <see cref="QueueStatisticsQuery"/>.</summary>
    public static async Task<QueueStatistics> QueueStatisticsAsync(DbCommand command, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        return new QueueStatistics(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1));
    }

    /// <summary>
    /// The Patients (with all their identifiers) that any of a batch's identifiers point at, one row per identifier;
    /// <paramref name="matchedIds"/> is the engine's subquery of matched Patient ids; <paramref name="version"/> the
    /// latest applied version (PostgreSQL's may not be stamped yet).
    /// </summary>
    public static string MatchedPatientsQuery(string matchedIds, string version = "p.version") => $"""
        SELECT p.id, p.tenant, {version}, p.content_hash, p.last_seq, pk.system, pk.value
        FROM patients p JOIN patient_keys pk ON pk.patient_id = p.id
        WHERE p.id IN ({matchedIds});
        """;

    /// <summary>Reads the rows of a <see cref="MatchedPatientsQuery"/>, grouped by Patient.</summary>
    public static async Task<IReadOnlyList<ExistingPatient>> MatchedPatientsAsync(DbDataReader reader, CancellationToken cancellationToken)
    {
        var patients = new Dictionary<string, (ExistingPatient Patient, List<PatientKey> Keys)>(StringComparer.Ordinal);
        while (await reader.ReadAsync(cancellationToken))
        {
            var id = reader.GetString(0);
            if (!patients.TryGetValue(id, out var entry))
            {
                var keys = new List<PatientKey>();
                entry = (new ExistingPatient(id, reader.GetString(1), reader.GetInt32(2), reader.GetFieldValue<byte[]>(3), reader.GetInt64(4), keys), keys);
                patients.Add(id, entry);
            }

            entry.Keys.Add(new PatientKey(reader.GetString(5), reader.GetString(6)));
        }

        return [.. patients.Values.Select(e => e.Patient)];
    }
}
