using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using Pit.Client;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary><c>pit submit</c>: many Patients, bounded parallelism, live progress, a summary and every failure.</summary>
internal static class SubmitCommand
{
    public static Command Build(PitCli cli)
    {
        var paths = new Argument<string[]>("paths") { Description = "Patient .json files, .ndjson files (one Patient a line) or folders of them.", Arity = ArgumentArity.OneOrMore };
        var parallel = new Option<int>("--parallel") { Description = "Requests in flight at once.", DefaultValueFactory = _ => 8 };
        var wait = new Option<bool>("--wait") { Description = "After submitting, wait until every accepted submission is processed." };
        var waitTimeout = new Option<TimeSpan>("--wait-timeout") { Description = "Give up waiting after this long (hh:mm:ss).", DefaultValueFactory = _ => TimeSpan.FromMinutes(5) };
        var json = new Option<bool>("--json") { Description = "Print one JSON line per Patient (file, submission id, status URL, status) on stdout; the summary goes to stderr." };
        var command = new Command("submit", "Submit Patients (POST /v1/Patient); prints each submission's id and status URL.") { paths, parallel, wait, waitTimeout, json };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            var degree = parse.GetValue(parallel);
            if (degree is < 1 or > 256)
            {
                throw new CliException("--parallel must be between 1 and 256.", ExitCodes.Usage);
            }

            var inputs = await SubmissionInputs.ReadAsync(cli.Context, parse.GetValue(paths)!, ct).ConfigureAwait(false);
            if (inputs.Count == 0)
            {
                throw new CliException("Nothing to submit: no .json or .ndjson files found.", ExitCodes.Usage);
            }

            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);
            // Fail fast and once on bad credentials, rather than once per file.
            await client.Tokens!.GetAccessTokenAsync(false, ct).ConfigureAwait(false);
            var run = new SubmitRun(cli.Context, client, inputs, degree, parse.GetValue(json));
            await run.SubmitAllAsync(ct).ConfigureAwait(false);
            if (parse.GetValue(wait))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(parse.GetValue(waitTimeout));
                await run.WaitAllAsync(timeout.Token, ct).ConfigureAwait(false);
            }

            return run.Report();
        }));
        return command;
    }

    /// <summary>A Patient that was not accepted: refused by the server, or not sent because it cannot be one.</summary>
    private sealed record Refusal(SubmissionInput Input, int ExitCode, string Headline, IReadOnlyList<string> Lines, string? Challenge);

    private sealed class SubmitRun(CliContext context, PitClient client, List<SubmissionInput> inputs, int degree, bool json)
    {
        private readonly ConcurrentDictionary<SubmissionInput, Uri> _accepted = new();
        private readonly ConcurrentBag<Refusal> _refused = [];
        private readonly ConcurrentBag<(SubmissionInput Input, SubmissionStatus Status)> _processed = [];
        private readonly Stopwatch _clock = new();
        private int _done;
        private int _failed;
        private bool _waited;
        private bool _waitTimedOut;
        private TimeSpan _submitTime;

        public async Task SubmitAllAsync(CancellationToken cancellationToken)
        {
            _clock.Start();
            await WithProgressAsync("Submitting", inputs.Count, async advance =>
                await Parallel.ForEachAsync(inputs, new ParallelOptions { MaxDegreeOfParallelism = degree, CancellationToken = cancellationToken }, async (input, ct) =>
                {
                    try
                    {
                        if (NotAPatient(input.Json) is { } problem)
                        {
                            _refused.Add(new Refusal(input, ExitCodes.BadRequest, "not sent", [problem], null));
                            Interlocked.Increment(ref _failed);
                        }
                        else
                        {
                            _accepted[input] = await client.SubmitPatientJsonAsync(input.Json, ct).ConfigureAwait(false);
                            Interlocked.Increment(ref _done);
                        }
                    }
                    catch (PitApiException e)
                    {
                        _refused.Add(new Refusal(
                            input, ExitCodes.For(e.StatusCode), $"refused with {(int)e.StatusCode} {e.StatusCode}", [.. e.IssueLines.DefaultIfEmpty(e.Message)], e.AuthenticateChallenge));
                        Interlocked.Increment(ref _failed);
                    }

                    advance();
                }).ConfigureAwait(false)).ConfigureAwait(false);
            _submitTime = _clock.Elapsed;
        }

        public async Task WaitAllAsync(CancellationToken timeout, CancellationToken cancellationToken)
        {
            _waited = true;
            var pending = _accepted.ToList();
            try
            {
                await WithProgressAsync("Processed", pending.Count, async advance =>
                    await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = degree, CancellationToken = timeout }, async (item, ct) =>
                    {
                        var status = await client.WaitForSubmissionAsync(item.Value, TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
                        _processed.Add((item.Key, status));
                        advance();
                    }).ConfigureAwait(false)).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                _waitTimedOut = true;
            }
        }

        /// <summary>
        /// A live progress bar on a terminal; elsewhere (cron, CI, pipes) nothing live, since the summary follows.
        /// </summary>
        private async Task WithProgressAsync(string phase, int total, Func<Action, Task> work)
        {
            if (json || !context.Out.Profile.Capabilities.Interactive)
            {
                await work(() => { }).ConfigureAwait(false);
                return;
            }

            await context.Out.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var task = progress.AddTask(Describe(phase), maxValue: Math.Max(1, total));
                    await work(() =>
                    {
                        task.Increment(1);
                        task.Description = Describe(phase);
                    }).ConfigureAwait(false);
                }).ConfigureAwait(false);
        }

        public int Report()
        {
            var processed = _processed.ToDictionary(p => p.Input, p => p.Status);
            var processingFailed = _processed.Where(p => p.Status.State == SubmissionState.Failed).ToList();
            WriteSubmissions(processed);

            var table = new Table().Title("Summary").AddColumns("", "count");
            table.AddRow("Patients read", inputs.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            table.AddRow("[green]accepted (202)[/]", _accepted.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            table.AddRow("[red]refused[/]", _refused.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (_waited)
            {
                table.AddRow("[green]processed[/]", _processed.Count(p => p.Status.State == SubmissionState.Completed).ToString(System.Globalization.CultureInfo.InvariantCulture));
                table.AddRow("[red]failed in processing[/]", processingFailed.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
                table.AddRow("not processed in time", (_accepted.Count - _processed.Count).ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            table.AddRow("rate", $"{inputs.Count / Math.Max(_submitTime.TotalSeconds, 0.001):F1}/s over {_submitTime.TotalSeconds:F1} s");
            // With --json stdout carries only the JSON lines.
            (json ? context.Error : context.Out).Write(table);

            foreach (var refusal in _refused.OrderBy(r => r.Input.Label, StringComparer.Ordinal))
            {
                context.Error.MarkupLineInterpolated($"[red]{refusal.Input.Label}[/]: {refusal.Headline}");
                foreach (var line in refusal.Lines)
                {
                    context.Error.MarkupLineInterpolated($"  {line}");
                }

                if (refusal.Challenge is not null)
                {
                    context.Error.MarkupLineInterpolated($"  [grey]WWW-Authenticate: {refusal.Challenge}[/]");
                    if (ErrorReport.Hint(refusal.Challenge) is { } hint)
                    {
                        context.Error.MarkupLineInterpolated($"  [yellow]{hint}[/]");
                    }
                }
            }

            foreach (var (input, status) in processingFailed.OrderBy(r => r.Input.Label, StringComparer.Ordinal))
            {
                context.Error.MarkupLineInterpolated($"[red]{input.Label}[/]: failed in processing ({status.StatusUrl})");
                foreach (var line in PitIssueLines(status))
                {
                    context.Error.MarkupLineInterpolated($"  {line}");
                }
            }

            if (_waitTimedOut)
            {
                context.Error.MarkupLine("[yellow]Stopped waiting before every submission was processed (--wait-timeout).[/]");
            }

            return ExitCodes.ForSubmissions(
                _accepted.Count, [.. _refused.Select(r => r.ExitCode)], processingFailed.Count > 0 || _waitTimedOut);
        }

        /// <summary>
        /// Each Patient's submission id and status URL (with its status once waited for), in input order: one line of
        /// text each, or with --json one JSON object each, refusals included.
        /// </summary>
        private void WriteSubmissions(Dictionary<SubmissionInput, SubmissionStatus> processed)
        {
            var refused = _refused.ToDictionary(r => r.Input);
            foreach (var input in inputs)
            {
                if (_accepted.TryGetValue(input, out var url))
                {
                    var status = processed.GetValueOrDefault(input);
                    if (json)
                    {
                        context.WriteData(StatusCommand.Json(input.Label, status ?? new SubmissionStatus(url, SubmissionState.Pending, null, null)));
                    }
                    else
                    {
                        context.Out.MarkupLineInterpolated($"{input.Label}  {StatusCommand.SubmissionId(url)}  {(status is null ? "queued" : StatusCommand.Describe(status))}  {url}");
                    }
                }
                else if (json && refused.TryGetValue(input, out var refusal))
                {
                    context.WriteData(new System.Text.Json.Nodes.JsonObject
                    {
                        ["file"] = input.Label,
                        ["status"] = "refused",
                        ["reason"] = refusal.Headline,
                        ["issues"] = new System.Text.Json.Nodes.JsonArray([.. refusal.Lines.Select(l => System.Text.Json.Nodes.JsonValue.Create(l))]),
                    }.ToJsonString(StatusCommand.JsonOptions));
                }
            }
        }

        /// <summary>
        /// Why this JSON cannot be a Patient, said so the user can fix the file, or null to let the server judge it.
        /// Invalid JSON is left to the server, whose answer names the problem.
        /// </summary>
        private static string? NotAPatient(string text)
        {
            try
            {
                using var document = System.Text.Json.JsonDocument.Parse(text);
                if (document.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
                {
                    return "This is not a JSON object: a Patient file holds one FHIR Patient, { \"resourceType\": \"Patient\", ... }.";
                }

                if (!document.RootElement.TryGetProperty("resourceType", out var type) || type.ValueKind != System.Text.Json.JsonValueKind.String)
                {
                    return "It has no \"resourceType\": add \"resourceType\": \"Patient\" at the top level of the JSON.";
                }

                return type.GetString() == "Patient" ? null : $"It is a {type.GetString()}, not a Patient: pit submit sends Patients only (\"resourceType\": \"Patient\").";
            }
            catch (System.Text.Json.JsonException)
            {
                return null;
            }
        }

        private static IEnumerable<string> PitIssueLines(SubmissionStatus status)
        {
            var lines = status.IssueLines;
            return lines.Count > 0 ? lines : ["(no reason given)"];
        }

        private string Describe(string phase)
        {
            if (_waited)
            {
                return $"{phase}: {_processed.Count} of {_accepted.Count}";
            }

            var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
            return $"{phase}: {_done} done, {_failed} failed, {(_done + _failed) / seconds:F0}/s";
        }
    }
}
