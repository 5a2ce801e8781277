using System.CommandLine;
using System.Text;
using System.Text.Json;
using Pit.Client;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary>
/// <c>pit sync</c>: pulls the change feed into NDJSON. The first run pages with <c>_sort=_lastUpdated</c> (from
/// <c>--since</c> if given); later runs ask for <c>_lastUpdated=gt&lt;last seen&gt;</c> at full precision and follow the
/// cursors, so each new version is appended exactly once. A lock file keeps two runs (say, overlapping cron jobs)
/// from writing at the same time. With <c>--follow</c> it does not stop at the end of the feed but long-polls
/// (<c>Prefer: wait</c>) and appends news as it becomes visible, until cancelled (Ctrl-C); state is saved after every
/// page, so a stopped follow resumes like any other run.
/// </summary>
internal static class SyncCommand
{
    private static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Build(PitCli cli)
    {
        var output = new Option<string>("--out") { Description = "NDJSON file to append Patients to.", Required = true };
        var statePath = new Option<string?>("--state") { Description = "State file (default: <out>.state.json)." };
        var since = new Option<string?>("--since") { Description = "First run only: start at this time (e.g. 2026-01-01T00:00Z) instead of the beginning." };
        var count = new Option<int>("--count") { Description = "Page size (1-50).", DefaultValueFactory = _ => 50 };
        var follow = new Option<bool>("--follow") { Description = "Keep the file current until stopped (Ctrl-C): wait for news instead of ending." };
        var followWait = new Option<int>("--follow-wait")
        {
            Description = "With --follow: seconds the server may hold a request that has nothing new (the server may shorten it).",
            DefaultValueFactory = _ => 30,
        };
        var command = new Command("sync", "Append new and changed Patients to an NDJSON file; resumable and safe to run from cron.")
        {
            output, statePath, since, count, follow, followWait,
        };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            var outPath = cli.Context.ResolvePath(parse.GetValue(output)!);
            var statePathValue = cli.Context.ResolvePath(parse.GetValue(statePath) ?? outPath + ".state.json");
            if (parse.GetValue(followWait) < 1)
            {
                throw new CliException("--follow-wait must be at least 1 second.", ExitCodes.Usage);
            }

            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);

            TimeSpan? wait = parse.GetValue(follow) ? TimeSpan.FromSeconds(parse.GetValue(followWait)) : null;
            return await RunAsync(cli.Context, client, outPath, statePathValue, parse.GetValue(since), parse.GetValue(count), ct, wait).ConfigureAwait(false);
        }));
        return command;
    }

    /// <param name="follow">Follow the feed with this long-poll wait until <paramref name="cancellationToken"/> stops it; null to end at the end of the feed.</param>
    internal static async Task<int> RunAsync(
        CliContext context, PitClient client, string outPath, string statePath, string? since, int count, CancellationToken cancellationToken, TimeSpan? follow = null)
    {
        // --out data/patients.ndjson works in a fresh checkout (data/ is git-ignored and may not exist yet).
        Directory.CreateDirectory(Path.GetDirectoryName(outPath)!);
        Directory.CreateDirectory(Path.GetDirectoryName(statePath)!);
        FileStream lockFile;
        try
        {
            lockFile = new FileStream(statePath + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException)
        {
            throw new CliException($"Another pit sync is writing {outPath} (lock {statePath}.lock); try again later.", ExitCodes.Failed);
        }

        using (lockFile)
        {
            var state = SyncState.Load(statePath);
            var created = !File.Exists(outPath);
            var outFile = new FileStream(outPath, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read);
            var succeeded = false;
            try
            {
                if (state is null)
                {
                    if (outFile.Length > 0)
                    {
                        throw new CliException($"{outPath} already has data but there is no state file {statePath}: pass the right --state, or sync into a new file.", ExitCodes.Usage);
                    }

                    state = new SyncState { BaseUrl = client.BaseAddress.AbsoluteUri };
                }
                else
                {
                    if (!string.Equals(state.BaseUrl, client.BaseAddress.AbsoluteUri, StringComparison.OrdinalIgnoreCase))
                    {
                        throw new CliException($"{statePath} tracks {state.BaseUrl}, not {client.BaseAddress}: use another --out/--state per server.", ExitCodes.Usage);
                    }

                    if (outFile.Length < state.OutputLength)
                    {
                        throw new CliException($"{outPath} is shorter than {statePath} records ({outFile.Length} < {state.OutputLength} bytes): it was truncated or replaced.", ExitCodes.Usage);
                    }

                    // A run that stopped after writing a page but before saving its state: drop that page, it comes again.
                    outFile.SetLength(state.OutputLength);
                    if (since is not null)
                    {
                        context.Error.MarkupLineInterpolated($"[yellow]--since is ignored: resuming after {state.LastUpdated ?? "the beginning"} from {statePath}.[/]");
                    }
                }

                outFile.Seek(0, SeekOrigin.End);
                var search = new PatientSearch { Count = count, Sort = PatientSort.LastUpdatedAscending };
                if (state.LastUpdated is not null)
                {
                    search.LastUpdated.Add("gt" + state.LastUpdated);
                }
                else if (since is not null)
                {
                    search.LastUpdated.Add("ge" + since);
                }

                long added = 0;
                var pages = 0;
                async Task PullAsync(Action<string> report)
                {
                    var pagesOfFeed = follow is { } wait ? client.FollowPagesAsync(search, wait, cancellationToken) : client.SearchPagesAsync(search, cancellationToken);
                    await foreach (var page in pagesOfFeed.ConfigureAwait(false))
                    {
                        pages++;
                        if (page.Entries.Count > 0)
                        {
                            var text = new StringBuilder();
                            foreach (var entry in page.Entries)
                            {
                                text.Append(OneLine(entry.Json)).Append('\n');
                            }

                            await outFile.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), cancellationToken).ConfigureAwait(false);
                            outFile.Flush(flushToDisk: true);
                            added += page.Entries.Count;
                            state = state with
                            {
                                LastUpdated = page.LastUpdated ?? state.LastUpdated,
                                OutputLength = outFile.Position,
                                Written = state.Written + page.Entries.Count,
                                SavedAt = DateTimeOffset.UtcNow,
                            };
                            state.Save(statePath);
                        }

                        report($"{pages} page(s), {added} new version(s), at {state.LastUpdated ?? "the beginning"}");
                    }
                }

                try
                {
                    if (context.Out.Profile.Capabilities.Interactive)
                    {
                        await context.Out.Status().StartAsync(follow is null ? "Syncing…" : "Following…", status => PullAsync(line => status.Status("Syncing… " + line))).ConfigureAwait(false);
                    }
                    else
                    {
                        // Logs (cron): a line every 100 pages, so a long first sync shows it is moving; when following, a line per page with news.
                        var reported = 0L;
                        await PullAsync(line =>
                        {
                            if (pages % 100 == 0 || (follow is not null && added != reported))
                            {
                                reported = added;
                                context.Out.WriteLine("Syncing… " + line);
                            }
                        }).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException) when (follow is not null && cancellationToken.IsCancellationRequested)
                {
                    // Stopping is how a follow ends; every page written so far is recorded in the state file.
                    context.Out.MarkupLine("Stopped following.");
                }

                if (state.SavedAt is null)
                {
                    state.Save(statePath); // record the server even when the feed was empty
                }

                context.Out.MarkupLineInterpolated($"Appended {added} Patient version(s) to {outPath} ({state.Written} in total); next run continues after {state.LastUpdated ?? "the beginning"}.");
                succeeded = true;
                return ExitCodes.Ok;
            }
            finally
            {
                var empty = outFile.Length == 0;
                await outFile.DisposeAsync().ConfigureAwait(false);
                // A run that failed before writing anything leaves no empty file behind to puzzle the next reader.
                if (!succeeded && created && empty)
                {
                    File.Delete(outPath);
                }
            }
        }
    }

    /// <summary>One NDJSON line: the resource's JSON as the server sent it, re-written compactly only if it spans lines.</summary>
    internal static string OneLine(string json)
    {
        if (!json.Contains('\n', StringComparison.Ordinal) && !json.Contains('\r', StringComparison.Ordinal))
        {
            return json;
        }

        using var document = JsonDocument.Parse(json);
        return JsonSerializer.Serialize(document.RootElement, Compact);
    }
}
