using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Pit.Client;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary><c>pit get</c> and <c>pit search</c>.</summary>
internal static class ReadCommands
{
    public static Command BuildGet(PitCli cli)
    {
        var id = new Argument<string>("id") { Description = "The Patient's id." };
        var command = new Command("get", "Read one Patient and print its JSON.") { id };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);
            var json = await client.ReadPatientJsonAsync(parse.GetValue(id)!, ct).ConfigureAwait(false);
            cli.Context.WriteData(Pretty(json));
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command BuildSearch(PitCli cli)
    {
        var lastUpdated = new Option<string[]>("--last-updated") { Description = "_lastUpdated filter with prefix, e.g. ge2026-01-01T12:00Z; repeat for a range." };
        var count = new Option<int?>("--count") { Description = "Page size (_count, 1-50)." };
        var sort = new Option<string?>("--sort") { Description = "_lastUpdated (oldest first) or -_lastUpdated (newest first)." };
        sort.AcceptOnlyFromAmong("_lastUpdated", "-_lastUpdated");
        var max = new Option<int?>("--max") { Description = "Stop after this many Patients (default: all pages)." };
        var ndjson = new Option<bool>("--ndjson") { Description = "Print each Patient as one JSON line instead of a table." };
        var command = new Command("search", "Search Patients (GET /v1/Patient), following next links.") { lastUpdated, count, sort, max, ndjson };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            var search = new PatientSearch
            {
                Count = parse.GetValue(count),
                Sort = parse.GetValue(sort) switch
                {
                    "-_lastUpdated" => PatientSort.LastUpdatedDescending,
                    "_lastUpdated" => PatientSort.LastUpdatedAscending,
                    _ => null,
                },
            };
            foreach (var filter in parse.GetValue(lastUpdated) ?? [])
            {
                search.LastUpdated.Add(filter);
            }

            var limit = parse.GetValue(max) ?? int.MaxValue;
            var asNdjson = parse.GetValue(ndjson);
            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);
            var table = new Table().AddColumns("id", "version", "lastUpdated", "name", "birthDate");
            var seen = 0;
            await foreach (var page in client.SearchPagesAsync(search, ct).ConfigureAwait(false))
            {
                foreach (var entry in page.Entries)
                {
                    if (seen++ >= limit)
                    {
                        break;
                    }

                    if (asNdjson)
                    {
                        cli.Context.WriteData(SyncCommand.OneLine(entry.Json));
                    }
                    else
                    {
                        var name = entry.Patient.Name.FirstOrDefault();
                        table.AddRow(
                            Markup.Escape(entry.Id ?? ""), Markup.Escape(entry.VersionId ?? ""), Markup.Escape(entry.LastUpdated ?? ""),
                            Markup.Escape(name is null ? "" : $"{string.Join(' ', name.Given)} {name.Family}".Trim()),
                            Markup.Escape(entry.Patient.BirthDate ?? ""));
                    }
                }

                if (seen >= limit)
                {
                    break;
                }
            }

            if (!asNdjson)
            {
                cli.Context.Out.Write(table);
                cli.Context.Out.MarkupLineInterpolated($"{Math.Min(seen, limit)} Patient(s).");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>For showing JSON to people: indented, and Norwegian letters and '+' as they are, not as \u escapes.</summary>
    internal static readonly JsonSerializerOptions Display = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    internal static string Pretty(string json)
    {
        using var document = JsonDocument.Parse(json);
        return JsonSerializer.Serialize(document.RootElement, Display);
    }
}
