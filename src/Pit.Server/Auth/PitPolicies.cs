namespace Pit.Server.Auth;

/// <summary>Authorisation policy names used by the PIT endpoints.</summary>
internal static class PitPolicies
{
    /// <summary>Requires scope <c>nhn:pit/api.read</c> and a valid <c>orgnr_parent</c>.</summary>
    public const string Read = "pit.read";

    /// <summary>Requires scope <c>nhn:pit/api.write</c> and a valid <c>orgnr_parent</c>.</summary>
    public const string Write = "pit.write";
}
