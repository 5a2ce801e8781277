namespace Pit.Server.Storage.Postgres;

/// <summary>
/// The settings <see cref="PostgresSequencer"/> reads. They sit in section <c>Pit:Processing</c> with the processor's
/// own settings (the keys operators know), but are bound here, so that the storage engine needs nothing from
/// Processing.
/// </summary>
internal sealed class PostgresSequencerOptions
{
    /// <summary>The section the settings are read from.</summary>
    public const string Section = "Pit:Processing";

    /// <summary><c>Pit:Processing:Enabled</c>: an instance that does not process runs no sequencer either (default true).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// <c>Pit:Processing:SequencerInterval</c>: how often the sequencer's leader looks for unstamped versions when no
    /// apply has told it of any, and how often every other instance tries to become the leader, i.e. the longest
    /// fail-over wait after the leader's connection is gone (default 250 ms, 1 ms-1 min).
    /// </summary>
    public TimeSpan SequencerInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Binds and checks the settings at start-up; every provider checks them, as it did when Processing held them.</summary>
    public static void Register(IServiceCollection services, IConfiguration configuration) =>
        services.AddOptions<PostgresSequencerOptions>().Bind(configuration.GetSection(Section))
            .Validate(o => o.SequencerInterval >= TimeSpan.FromMilliseconds(1) && o.SequencerInterval <= TimeSpan.FromMinutes(1),
                "Pit:Processing:SequencerInterval must be 00:00:00.001-00:01:00.")
            .ValidateOnStart();
}
