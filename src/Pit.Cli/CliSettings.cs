using System.Text.Json;
using System.Text.Json.Serialization;
using Pit.Client;

namespace Pit.Cli;

/// <summary>
/// Connection settings, layered: built-in defaults, then the config file, then <c>PIT_*</c> environment variables,
/// then <c>--dev</c>, then explicit flags.
/// </summary>
internal sealed record CliSettings
{
    public string? BaseUrl { get; init; }
    public string? Authority { get; init; }
    public string? ClientId { get; init; }
    public string? KeyFile { get; init; }
    public string? DpopKeyFile { get; init; }
    public string[]? Scopes { get; init; }
    public string? OrganisationNumber { get; init; }
    public string? ChildOrganisationNumber { get; init; }

    public static readonly CliSettings Defaults = new()
    {
        BaseUrl = PitClientOptions.TestBaseAddress.AbsoluteUri,
        Authority = HelseIdClientOptions.TestAuthority.AbsoluteUri.TrimEnd('/'),
        Scopes = ["nhn:pit/api.read", "nhn:pit/api.write"],
    };

    public static readonly CliSettings Dev = new()
    {
        BaseUrl = DevDefaults.BaseUrl,
        Authority = DevDefaults.Authority,
        ClientId = DevDefaults.ClientId,
        KeyFile = DevDefaults.KeyFile,
    };

    private static readonly JsonSerializerOptions FileJson = new()
    {
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Values set in <paramref name="overrides"/> win.</summary>
    public CliSettings With(CliSettings? overrides) => overrides is null ? this : new CliSettings
    {
        BaseUrl = overrides.BaseUrl ?? BaseUrl,
        Authority = overrides.Authority ?? Authority,
        ClientId = overrides.ClientId ?? ClientId,
        KeyFile = overrides.KeyFile ?? KeyFile,
        DpopKeyFile = overrides.DpopKeyFile ?? DpopKeyFile,
        Scopes = overrides.Scopes is { Length: > 0 } ? overrides.Scopes : Scopes,
        OrganisationNumber = overrides.OrganisationNumber ?? OrganisationNumber,
        ChildOrganisationNumber = overrides.ChildOrganisationNumber ?? ChildOrganisationNumber,
    };

    /// <summary>The config file: <c>--config</c>, else <c>PIT_CONFIG</c>, else <c>~/.config/pit/config.json</c> when present.</summary>
    public static CliSettings? FromFile(CliContext context, string? explicitPath)
    {
        var path = explicitPath ?? context.Environment("PIT_CONFIG");
        var required = path is not null;
        if (path is null)
        {
            var home = context.Environment("HOME") ?? context.Environment("USERPROFILE");
            if (home is null)
            {
                return null;
            }

            path = Path.Combine(home, ".config", "pit", "config.json");
        }

        path = context.ResolvePath(path);
        if (!File.Exists(path))
        {
            return required ? throw new CliException($"Config file {path} does not exist.", ExitCodes.Usage) : null;
        }

        try
        {
            var settings = JsonSerializer.Deserialize<CliSettings>(File.ReadAllText(path), FileJson) ?? new CliSettings();
            // Relative key paths in a config file are relative to that file.
            var folder = Path.GetDirectoryName(path)!;
            return settings with
            {
                KeyFile = settings.KeyFile is null ? null : Path.GetFullPath(settings.KeyFile, folder),
                DpopKeyFile = settings.DpopKeyFile is null ? null : Path.GetFullPath(settings.DpopKeyFile, folder),
            };
        }
        catch (JsonException e)
        {
            throw new CliException($"Config file {path} is not valid: {e.Message}", ExitCodes.Usage);
        }
    }

    public static CliSettings FromEnvironment(CliContext context) => new()
    {
        BaseUrl = context.Environment("PIT_BASE_URL"),
        Authority = context.Environment("PIT_AUTHORITY"),
        ClientId = context.Environment("PIT_CLIENT_ID"),
        KeyFile = context.Environment("PIT_KEY_FILE"),
        DpopKeyFile = context.Environment("PIT_DPOP_KEY_FILE"),
        Scopes = context.Environment("PIT_SCOPES")?.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        OrganisationNumber = context.Environment("PIT_ORG"),
        ChildOrganisationNumber = context.Environment("PIT_CHILD_ORG"),
    };

    /// <summary>Builds the client options, reading the key files.</summary>
    public async Task<PitClientOptions> ToClientOptionsAsync(CliContext context, bool dev, CancellationToken cancellationToken)
    {
        var baseUrl = Absolute(BaseUrl, "base URL (--base-url, PIT_BASE_URL)");
        var authority = Absolute(Authority, "HelseID authority (--authority, PIT_AUTHORITY)");
        if (string.IsNullOrEmpty(ClientId))
        {
            throw new CliException("No client id: pass --client-id, set PIT_CLIENT_ID or clientId in the config file (or use --dev).", ExitCodes.Usage);
        }

        if (string.IsNullOrEmpty(KeyFile))
        {
            throw new CliException("No client key: pass --key-file, set PIT_KEY_FILE or keyFile in the config file (or use --dev).", ExitCodes.Usage);
        }

        foreach (var (value, what) in new[] { (OrganisationNumber, "--org (PIT_ORG)"), (ChildOrganisationNumber, "--child-org (PIT_CHILD_ORG)") })
        {
            if (value is not null && (value.Length != 9 || !value.All(char.IsAsciiDigit)))
            {
                throw new CliException($"The organisation number {what} '{value}' is not 9 digits.", ExitCodes.Usage);
            }
        }

        var clientKey = await ReadKeyAsync(context, KeyFile, dev, cancellationToken).ConfigureAwait(false);
        var dpopKey = DpopKeyFile is null ? null : await ReadKeyAsync(context, DpopKeyFile, dev, cancellationToken).ConfigureAwait(false);
        return new PitClientOptions
        {
            BaseAddress = baseUrl,
            HelseId = new HelseIdClientOptions
            {
                Authority = authority,
                ClientId = ClientId,
                ClientKey = clientKey,
                DpopKey = dpopKey,
                Scopes = Scopes is { Length: > 0 } ? [.. Scopes] : [.. Defaults.Scopes!],
                OrganisationNumber = OrganisationNumber,
                ChildOrganisationNumber = ChildOrganisationNumber,
            },
        };
    }

    private static Uri Absolute(string? value, string what) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)
            ? uri
            : throw new CliException($"The {what} '{value}' is not an absolute http(s) URL.", ExitCodes.Usage);

    private static async Task<ClientSigningKey> ReadKeyAsync(CliContext context, string file, bool dev, CancellationToken cancellationToken)
    {
        var path = FindFile(context, file, searchUpwards: dev);
        if (path is null)
        {
            throw new CliException(
                dev ? $"Development client key {file} not found in {context.WorkingDirectory} or a folder above it: run pit --dev from the repository, or pass --key-file."
                    : $"Key file {context.ResolvePath(file)} does not exist.",
                ExitCodes.Usage);
        }

        try
        {
            return await ClientSigningKey.FromFileAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"Key file {path}: {e.Message}", ExitCodes.Usage);
        }
    }

    /// <summary>The dev key lives in the repository: look in the working directory and its parents.</summary>
    private static string? FindFile(CliContext context, string file, bool searchUpwards)
    {
        if (Path.IsPathRooted(file) || !searchUpwards)
        {
            var full = context.ResolvePath(file);
            return File.Exists(full) ? full : null;
        }

        for (var folder = new DirectoryInfo(context.WorkingDirectory); folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, file);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}

/// <summary>A failure to explain to the user in one line, with its exit code.</summary>
internal sealed class CliException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
