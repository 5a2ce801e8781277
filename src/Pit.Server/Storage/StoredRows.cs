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
}
