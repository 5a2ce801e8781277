using System.Data.Common;
using System.Globalization;

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

    /// <summary>The Patient columns every engine selects, in this order.</summary>
    public const string PatientColumns = "id, tenant, version, last_updated, json";

    /// <summary>Reads a row of <see cref="PatientColumns"/>.</summary>
    public static PatientRecord Patient(DbDataReader reader) =>
        new(reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3), reader.GetFieldValue<byte[]>(4));

    /// <summary>Runs <paramref name="command"/> (a select of <see cref="PatientColumns"/>) and reads every row.</summary>
    public static async Task<IReadOnlyList<PatientRecord>> PatientsAsync(DbCommand command, int expected, CancellationToken cancellationToken)
    {
        var result = new List<PatientRecord>(expected);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result.Add(Patient(reader));
        }

        return result;
    }
}
