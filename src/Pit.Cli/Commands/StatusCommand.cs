using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pit.Client;
using Spectre.Console;

namespace Pit.Cli.Commands;

/// <summary>
/// <c>pit status &lt;id|url&gt;…</c>: where submissions are (queued, processed into which Patient, or failed and why),
/// from the status URLs that <c>pit submit</c> prints.
/// </summary>
internal static class StatusCommand
{
    internal static readonly JsonSerializerOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Build(PitCli cli)
    {
        var submissions = new Argument<string[]>("submissions")
        {
            Description = "Submission ids or status URLs, as pit submit prints them (the 202's Content-Location).",
            Arity = ArgumentArity.OneOrMore,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON line per submission." };
        var command = new Command("status", "Show submissions' status: queued, processed (with the Patient) or failed (with the reason).") { submissions, json };
        command.SetAction((parse, ct) => cli.GuardAsync(async () =>
        {
            using var client = await cli.CreateClientAsync(parse, ct).ConfigureAwait(false);
            var anyFailed = false;
            foreach (var given in parse.GetValue(submissions)!)
            {
                var status = await client.GetSubmissionStatusAsync(StatusUrl(client.BaseAddress, given), ct).ConfigureAwait(false);
                anyFailed |= status.State == SubmissionState.Failed;
                if (parse.GetValue(json))
                {
                    cli.Context.WriteData(Json(null, status));
                    continue;
                }

                var color = status.State switch { SubmissionState.Completed => "green", SubmissionState.Failed => "red", _ => "yellow" };
                cli.Context.Out.MarkupLineInterpolated($"{SubmissionId(status.StatusUrl)}  [{color}]{Describe(status)}[/]  {status.StatusUrl}");
                if (status.State == SubmissionState.Failed)
                {
                    foreach (var line in status.IssueLines.DefaultIfEmpty("(no reason given)"))
                    {
                        cli.Context.Out.MarkupLineInterpolated($"  {line}");
                    }
                }
            }

            return anyFailed ? ExitCodes.Failed : ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>An absolute status URL as given, or the status URL of a bare submission id on this server.</summary>
    internal static Uri StatusUrl(Uri baseAddress, string given)
    {
        if (Uri.TryCreate(given, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps))
        {
            return url;
        }

        if (given.Length is 0 or > 64 || !given.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_'))
        {
            throw new CliException($"'{given}' is neither a submission id nor a status URL: give what pit submit printed, e.g. {baseAddress}v1/submissions/<id>.", ExitCodes.Usage);
        }

        return new Uri(baseAddress, "v1/submissions/" + given);
    }

    /// <summary>The submission id: the last segment of its status URL.</summary>
    internal static string SubmissionId(Uri statusUrl) => Uri.UnescapeDataString(statusUrl.Segments[^1].TrimEnd('/'));

    /// <summary>queued, processed Patient/{id}, or failed.</summary>
    internal static string Describe(SubmissionStatus status) => status.State switch
    {
        SubmissionState.Pending => "queued",
        SubmissionState.Completed => status.PatientId is null ? "processed" : $"processed Patient/{status.PatientId}",
        _ => "failed",
    };

    /// <summary>One JSON line about a submission: file (when known), id, statusUrl, status, patient, issues.</summary>
    internal static string Json(string? file, SubmissionStatus status)
    {
        var line = new JsonObject();
        if (file is not null)
        {
            line["file"] = file;
        }

        line["id"] = SubmissionId(status.StatusUrl);
        line["statusUrl"] = status.StatusUrl.AbsoluteUri;
        line["status"] = status.State switch { SubmissionState.Pending => "queued", SubmissionState.Completed => "processed", _ => "failed" };
        if (status.PatientId is not null)
        {
            line["patient"] = "Patient/" + status.PatientId;
        }

        if (status.State == SubmissionState.Failed)
        {
            line["issues"] = new JsonArray([.. status.IssueLines.Select(l => JsonValue.Create(l))]);
        }

        return line.ToJsonString(JsonOptions);
    }
}
