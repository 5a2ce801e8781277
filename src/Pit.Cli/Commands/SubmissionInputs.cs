namespace Pit.Cli.Commands;

/// <summary>One Patient to submit and where it came from (file, or file:line for NDJSON).</summary>
internal sealed record SubmissionInput(string Label, string Json);

/// <summary>Expands the paths given to <c>pit submit</c>: .json files, .ndjson files (one Patient a line) and folders.</summary>
internal static class SubmissionInputs
{
    public static async Task<List<SubmissionInput>> ReadAsync(CliContext context, IEnumerable<string> paths, CancellationToken cancellationToken)
    {
        var inputs = new List<SubmissionInput>();
        foreach (var given in paths)
        {
            var path = context.ResolvePath(given);
            if (Directory.Exists(path))
            {
                var files = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => IsJson(f) || IsNdjson(f))
                    .Order(StringComparer.Ordinal);
                foreach (var file in files)
                {
                    await AddFileAsync(inputs, file, Path.GetRelativePath(context.WorkingDirectory, file), cancellationToken).ConfigureAwait(false);
                }
            }
            else if (File.Exists(path))
            {
                await AddFileAsync(inputs, path, given, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                throw new CliException($"{given}: no such file or folder.", ExitCodes.Usage);
            }
        }

        return inputs;
    }

    private static async Task AddFileAsync(List<SubmissionInput> inputs, string file, string label, CancellationToken cancellationToken)
    {
        if (IsNdjson(file))
        {
            var number = 0;
            await foreach (var line in File.ReadLinesAsync(file, cancellationToken).ConfigureAwait(false))
            {
                number++;
                if (!string.IsNullOrWhiteSpace(line))
                {
                    inputs.Add(new SubmissionInput($"{label}:{number}", line));
                }
            }
        }
        else
        {
            inputs.Add(new SubmissionInput(label, await File.ReadAllTextAsync(file, cancellationToken).ConfigureAwait(false)));
        }
    }

    private static bool IsJson(string file) => file.EndsWith(".json", StringComparison.OrdinalIgnoreCase);

    private static bool IsNdjson(string file) => file.EndsWith(".ndjson", StringComparison.OrdinalIgnoreCase);
}
