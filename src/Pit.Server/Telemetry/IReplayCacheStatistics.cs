namespace Pit.Server.Telemetry;

/// <summary>Implemented by a DPoP replay cache that can tell cheaply how many entries it holds (gauge <c>pit.dpop.replay_cache.entries</c>).</summary>
internal interface IReplayCacheStatistics
{
    /// <summary>Entries held now (approximate is fine).</summary>
    long Entries { get; }
}
