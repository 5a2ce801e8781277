namespace Pit.Cli;

/// <summary>
/// What <c>--dev</c> means: a PIT server running locally (<c>dotnet run --project src/Pit.Server</c>) with the
/// HelseID stand-in hosted inside it, and the stand-in's documented development client. The one place to change
/// when the server's development setup moves.
/// </summary>
internal static class DevDefaults
{
    public const string BaseUrl = "http://localhost:5080/";

    /// <summary>The stand-in's issuer, hosted by the development server.</summary>
    public const string Authority = "http://localhost:5080/helseid-standin";

    /// <summary>The stand-in's registered development client.</summary>
    public const string ClientId = "pit-dev-client";

    /// <summary>
    /// The development client's private JWK, committed in the repository (development only). Relative paths are
    /// looked up from the working directory upwards, so <c>pit --dev</c> works anywhere inside the repository.
    /// </summary>
    public const string KeyFile = "dev/helseid-standin/dev-client.jwk.json";
}
