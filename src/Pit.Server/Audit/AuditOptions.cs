namespace Pit.Server.Audit;

/// <summary>Options of section <c>Pit:Audit</c>.</summary>
internal sealed class AuditOptions
{
    /// <summary>
    /// Audit entries are kept at least this many days (default 365; 1-3650). PostgreSQL drops a whole UTC day once all
    /// of it is older, so an entry may stay up to a day longer.
    /// </summary>
    public int RetentionDays { get; set; } = 365;

    /// <summary>
    /// <c>/health/ready</c> is unhealthy while more audit entries than this wait for their write (default 50,000); any
    /// backlog while writes fail makes it degraded.
    /// </summary>
    public int ReadinessBacklog { get; set; } = 50_000;
}
