namespace Pit.LoadTest;

/// <summary>Server settings every harness mode shares.</summary>
internal static class HarnessSettings
{
    /// <summary>The environment the harness runs the server in unless told otherwise.</summary>
    public const string DefaultEnvironment = "LoadTest";

    /// <summary>
    /// Runs the server as an operator would, not in Development (no developer exception page, no DI scope validation),
    /// in <paramref name="environment"/>; the HelseID stand-in is allowed there only because the harness names it.
    /// </summary>
    public static void UseEnvironment(IDictionary<string, string?> settings, string environment = DefaultEnvironment)
    {
        settings["environment"] = environment;
        settings["Pit:Auth:StandIn:AllowedEnvironments:0"] = environment;
    }
}
