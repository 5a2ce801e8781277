using Pit.Server.Tests.Infrastructure;

namespace Pit.Client.Tests.Infrastructure;

/// <summary>
/// How the client tests reach the real server started by <see cref="TestServer"/>: its in-process HelseID stand-in,
/// the repository's development client (<c>pit-dev-client</c> and its key) and the example Patients.
/// </summary>
internal static class RealPit
{
    public const string DevClientId = "pit-dev-client";

    /// <summary>The server's HelseID stand-in.</summary>
    public static Uri Authority(TestServer server) => new(server.BaseAddress, "helseid-standin");

    /// <summary><c>pit</c> flags that reach <paramref name="server"/> as the development client.</summary>
    public static string[] Connection(TestServer server, Uri? authority = null, string? keyFile = null) =>
        ["--base-url", server.BaseAddress.AbsoluteUri, "--authority", (authority ?? Authority(server)).AbsoluteUri, "--client-id", DevClientId, "--key-file", keyFile ?? DevKeyFile()];

    /// <summary>Library options that reach <paramref name="server"/> as the development client.</summary>
    public static async Task<PitClientOptions> ClientOptions(TestServer server, HttpMessageHandler? primaryHandler = null) => new()
    {
        BaseAddress = server.BaseAddress,
        HelseId = new HelseIdClientOptions
        {
            Authority = Authority(server),
            ClientId = DevClientId,
            ClientKey = await ClientSigningKey.FromFileAsync(DevKeyFile()),
        },
        PrimaryHandler = primaryHandler,
    };

    public static string DevKeyFile() => Path.Combine(RepositoryRoot(), "dev", "helseid-standin", "dev-client.jwk.json");

    public static string ExamplesFolder() => Path.Combine(RepositoryRoot(), "examples", "patients");

    public static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Pit.slnx")))
            {
                return folder.FullName;
            }
        }

        throw new DirectoryNotFoundException("The repository (Pit.slnx) was not found above the test output folder.");
    }

    /// <summary>Copies the example Patients into a new folder <paramref name="name"/> under <paramref name="parent"/>.</summary>
    public static string CopyExamples(string parent, string name = "patients")
    {
        var target = Directory.CreateDirectory(Path.Combine(parent, name)).FullName;
        foreach (var file in Directory.EnumerateFiles(ExamplesFolder(), "*.json"))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
        }

        return target;
    }
}
