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
        var command = new Command("submit", "Submit Patients (POST /v1/Patient).") { paths, parallel, wait, waitTimeout };
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
            var run = new SubmitRun(cli.Context, client, inputs, degree);
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

    private sealed class SubmitRun(CliContext context, PitClient client, List<SubmissionInput> inputs, int degree)
    {
        private readonly ConcurrentDictionary<SubmissionInput, Uri> _accepted = new();
        private readonly ConcurrentBag<(SubmissionInput Input, PitApiException Error)> _refused = [];
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
                        _accepted[input] = await client.SubmitPatientJsonAsync(input.Json, ct).ConfigureAwait(false);
                        Interlocked.Increment(ref _done);
                    }
                    catch (PitApiException e)
                    {
                        _refused.Add((input, e));
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
            if (!context.Out.Profile.Capabilities.Interactive)
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
            var processingFailed = _processed.Where(p => p.Status.State == SubmissionState.Failed).ToList();
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
            context.Out.Write(table);

            foreach (var (input, error) in _refused.OrderBy(r => r.Input.Label, StringComparer.Ordinal))
            {
                context.Error.MarkupLineInterpolated($"[red]{input.Label}[/]: refused with {(int)error.StatusCode} {error.StatusCode}");
                foreach (var line in error.IssueLines.DefaultIfEmpty(error.Message))
                {
                    context.Error.MarkupLineInterpolated($"  {line}");
                }

                if (error.AuthenticateChallenge is not null)
                {
                    context.Error.MarkupLineInterpolated($"  [grey]WWW-Authenticate: {error.AuthenticateChallenge}[/]");
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

            if (_refused.Any(r => (int)r.Error.StatusCode is 401 or 403))
            {
                return ExitCodes.For(_refused.First(r => (int)r.Error.StatusCode is 401 or 403).Error.StatusCode);
            }

            if (!_refused.IsEmpty)
            {
                return _refused.All(r => ExitCodes.For(r.Error.StatusCode) == ExitCodes.BadRequest) ? ExitCodes.BadRequest : ExitCodes.Failed;
            }

            return processingFailed.Count > 0 || _waitTimedOut ? ExitCodes.Failed : ExitCodes.Ok;
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
