using System.Globalization;
using System.Text.Json;
using Pit.Server.Auth;
using Pit.Server.Storage;
using Pit.Server.Upsert;

namespace Pit.Server.Audit;

/// <summary>
/// <c>audit-export --from &lt;time&gt; --to &lt;time&gt; [--organisation &lt;orgnr&gt;] [--out &lt;file&gt;] [--Pit:…]</c>: writes the
/// audit entries with from &lt;= at &lt; to (UTC when no offset is given; a bare date is its midnight) as NDJSON, one
/// entry per line, oldest first, to the file or to standard output. For the data protection officer. Other
/// arguments configure the store as for the server.
/// </summary>
internal static class AuditExportCommand
{
    /// <summary>Exit code for a usage error.</summary>
    public const int UsageError = 2;

    /// <summary>Runs the command, writing to <paramref name="output"/> unless <c>--out</c> names a file; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, Stream output, TextWriter error, CancellationToken cancellationToken)
    {
        var (request, rest, problem) = Parse(args);
        if (request is null)
        {
            await error.WriteLineAsync(problem);
            await error.WriteLineAsync("usage: audit-export --from <time> --to <time> [--organisation <orgnr>] [--out <file>] [--Pit:Storage:…]");
            return UsageError;
        }

        // Logs would go to standard output, which may be carrying the export.
        // Only the store is built: the export needs no Pit:Auth or other server settings.
        await using var app = PitApp.CreateStoreTool(rest, b => b.Logging.ClearProviders());
        var store = app.Services.GetRequiredService<IAuditExportStore>();
        var migrator = app.Services.GetRequiredService<IStoreMigrator>();
        if ((await migrator.GetSchemaVersionAsync(cancellationToken)).Current == 0)
        {
            // Most likely a mistyped or relative path that resolved elsewhere: say where we looked.
            throw new StoreSchemaException($"The store holds no PIT schema, so no audit log: {migrator.Location}. Check Pit:Storage.");
        }

        await using var file = request.Out is null ? null : File.Create(request.Out);
        var target = file ?? output;
        long count = 0;
        await using (var json = new Utf8JsonWriter(target))
        {
            await foreach (var entry in store.ExportAuditAsync(request.From, request.To, request.Organisation, cancellationToken))
            {
                Write(json, entry);
                await json.FlushAsync(cancellationToken);
                target.WriteByte((byte)'\n');
                json.Reset();
                count++;
            }
        }

        await target.FlushAsync(cancellationToken);
        await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"Exported {count} audit entries."));
        return 0;
    }

    /// <summary>One entry as a JSON object: times as UTC instants with microseconds.</summary>
    internal static void Write(Utf8JsonWriter json, AuditEntry entry)
    {
        json.WriteStartObject();
        json.WriteString("at", FeedTime.Format(entry.At));
        json.WriteString("action", entry.Action);
        json.WriteString("clientId", entry.ClientId);
        json.WriteString("organisation", entry.Organisation);
        json.WriteString("orgnrChild", entry.OrgnrChild);
        json.WriteString("submissionId", entry.SubmissionId?.ToString());
        json.WriteString("patientIds", entry.PatientIds);
        json.WriteNumber("status", entry.Status);
        json.WriteString("outcome", entry.Outcome);
        json.WriteEndObject();
    }

    private sealed record Request(long From, long To, string? Organisation, string? Out);

    private static (Request? Request, string[] Remaining, string Problem) Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--from" or "--to" or "--organisation" or "--out")
            {
                if (i + 1 >= args.Length)
                {
                    return (null, [], $"{args[i]} needs a value.");
                }

                values[args[i]] = args[++i];
            }
            else
            {
                rest.Add(args[i]);
            }
        }

        if (!values.TryGetValue("--from", out var fromText) || !TryParseTime(fromText, out var from))
        {
            return (null, [], "--from must be a time such as 2026-01-01 or 2026-01-01T12:00:00Z.");
        }

        if (!values.TryGetValue("--to", out var toText) || !TryParseTime(toText, out var to))
        {
            return (null, [], "--to must be a time such as 2026-02-01 or 2026-02-01T00:00:00Z.");
        }

        if (to <= from)
        {
            return (null, [], "--to must be later than --from.");
        }

        var organisation = values.GetValueOrDefault("--organisation");
        if (organisation is not null && !OrganisationNumber.IsValid(organisation))
        {
            return (null, [], "--organisation must be a valid organisation number (9 digits).");
        }

        return (new Request(from, to, organisation, values.GetValueOrDefault("--out")), [.. rest], "");
    }

    private static bool TryParseTime(string text, out long micros)
    {
        var ok = DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time);
        micros = ok ? FeedTime.FromDateTimeOffset(time) : 0;
        return ok;
    }
}
