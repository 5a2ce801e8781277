using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pit.Cli.Commands;

/// <summary>
/// Where <c>pit sync</c> got to: the last <c>meta.lastUpdated</c> written (exactly as the server wrote it) and the
/// length of the output file at that moment. Saved after every page with write-then-rename, so a crash leaves
/// either the old or the new state; bytes past <see cref="OutputLength"/> are from an unfinished page and are cut.
/// </summary>
internal sealed record SyncState
{
    public int Version { get; init; } = 1;

    public string? BaseUrl { get; init; }

    public string? LastUpdated { get; init; }

    public long OutputLength { get; init; }

    public long Written { get; init; }

    public DateTimeOffset? SavedAt { get; init; }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static SyncState? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<SyncState>(File.ReadAllText(path), Json)
                ?? throw new CliException($"State file {path} is empty.", ExitCodes.Usage);
        }
        catch (JsonException e)
        {
            throw new CliException($"State file {path} is not valid ({e.Message}); fix or remove it.", ExitCodes.Usage);
        }
    }

    public void Save(string path)
    {
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, this, Json);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }
}
