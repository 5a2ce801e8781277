using System.Reflection;

namespace Pit.Server.Operability;

/// <summary>
/// The version this build carries: the assembly's informational version, which the SDK stamps as
/// <c>&lt;version&gt;+&lt;commit&gt;</c> when the source is a git checkout (Directory.Build.props), and
/// <c>&lt;version&gt;</c> alone when it is not. <c>--version</c>, the CapabilityStatement and the logs show the same string.
/// </summary>
internal static class ServerVersion
{
    /// <summary>For example <c>0.1.0+3fec6a5150ed228f84e98efd5111906569cd0915</c>.</summary>
    public static string Value { get; } =
        typeof(ServerVersion).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(ServerVersion).Assembly.GetName().Version?.ToString()
        ?? "unknown";
}
