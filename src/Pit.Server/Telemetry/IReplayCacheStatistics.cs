namespace Pit.Server.Telemetry;

/// <summary>Implemented by a DPoP replay cache that can tell cheaply how many entries it holds (gauge <c>pit.dpop.replay_cache.entries</c>) and can hold.</summary>
internal interface IReplayCacheStatistics
{
    /// <summary>Entries held now (approximate is fine).</summary>
    long Entries { get; }

    /// <summary>Most entries it can hold (gauge <c>pit.dpop.replay_cache.capacity</c>): alerts compare the two.</summary>
    long Capacity { get; }
}
