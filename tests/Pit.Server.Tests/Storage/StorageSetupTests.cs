using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Pit.Server.Auth;
using Pit.Server.Storage;
using Pit.Server.Storage.Postgres;
using Pit.Server.Storage.Sqlite;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Storage;

/// <summary>What each provider registers, and the start-up checks of the storage options.</summary>
public sealed class StorageSetupTests
{
    [Fact]
    public async Task The_Sqlite_provider_serves_every_store_interface_from_one_engine_and_keeps_the_in_memory_replay_cache()
    {
        await using var server = await TestServer.StartAsync();
        var engine = Assert.IsType<SqlitePitStore>(server.Services.GetRequiredService<ISubmissionQueueStore>());
        Assert.Same(engine, server.Services.GetRequiredService<IStoreMigrator>());
        Assert.Same(engine, server.Services.GetRequiredService<IPatientFeedStore>());
        Assert.Same(engine, server.Services.GetRequiredService<ISharedSecretStore>());
        Assert.Same(engine, server.Services.GetRequiredService<IAuditStore>());
        Assert.Same(engine, server.Services.GetRequiredService<IStoreHealth>());
        Assert.IsType<InMemoryDpopReplayCache>(server.Services.GetRequiredService<IDpopReplayCache>());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_Postgres_provider_brings_the_shared_replay_cache_whether_auth_registers_its_default_before_or_after(bool authFirst)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            ["Pit:Storage:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=pit",
        }).Build();
        var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration);
        if (authFirst)
        {
            services.TryAddSingleton<IDpopReplayCache, InMemoryDpopReplayCache>(); // what Auth's wiring does
        }

        services.AddPitStorage(configuration, new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { ContentRootPath = Path.GetTempPath() });
        services.TryAddSingleton<IDpopReplayCache, InMemoryDpopReplayCache>();

        await using var provider = services.BuildServiceProvider();
        Assert.IsType<PostgresDpopReplayCache>(provider.GetRequiredService<IDpopReplayCache>());
        Assert.Single(services, d => d.ServiceType == typeof(IDpopReplayCache));
        Assert.IsType<PostgresPitStore>(provider.GetRequiredService<IStoreHealth>());
    }

    [Theory]
    [InlineData("Pit:Audit:RetentionDays", "0")]
    [InlineData("Pit:Audit:RetentionDays", "3651")]
    [InlineData("Pit:Audit:ReadinessBacklog", "0")]
    [InlineData("Pit:Storage:SubmissionRetentionDays", "0")]
    public async Task A_retention_or_backlog_setting_out_of_range_stops_start_up_naming_its_key(string key, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Pit:Secrets:cursor", "not base64!")]
    [InlineData("Pit:Secrets:cursor", "AAECAwQFBgcICQoLDA0ODw==")] // 16 bytes
    public async Task A_configured_secret_that_is_not_base64_of_32_bytes_stops_start_up_naming_its_key(string key, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(new Dictionary<string, string?> { [key] = value }));
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_configured_secret_of_32_bytes_is_used_as_given()
    {
        var secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["Pit:Secrets:cursor"] = Convert.ToBase64String(secret) });
        Assert.Equal(secret, await server.Services.GetRequiredService<SharedSecrets>().GetAsync("cursor", CancellationToken.None));
    }

    [Theory]
    [InlineData("Pit:Storage:Provider", "Oracle", "Pit:Storage:Provider")]
    [InlineData("Pit:Storage:ConnectionString", "", "Pit:Storage:ConnectionString")]
    [InlineData("Pit:Storage:MaxApplyAttempts", "0", "Pit:Storage:MaxApplyAttempts")]
    [InlineData("Pit:Storage:ApplyRetryDelay", "00:00:00", "Pit:Storage:ApplyRetryDelay")]
    [InlineData("Pit:Storage:ApplyRetryMaxDelay", "00:00:00.5", "Pit:Storage:ApplyRetryMaxDelay")]
    [InlineData("Pit:Storage:ReadConnectionString", "Hots=standby;Password=secret", "Pit:Storage:ReadConnectionString")]
    [InlineData("Pit:Storage:ReadConnectionString", "Database=pit;Password=secret", "Pit:Storage:ReadConnectionString")]
    [InlineData("Pit:Storage:StandbyPollInterval", "00:00:00", "Pit:Storage:StandbyPollInterval")]
    [InlineData("Pit:Storage:StandbyWaitTimeout", "00:00:00.001", "Pit:Storage:StandbyWaitTimeout")]
    public async Task A_bad_Postgres_store_option_stops_start_up_naming_its_key(string key, string value, string named)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Pit:Storage:Provider"] = "Postgres",
            // Nothing listens here: start-up must fail on the option before any connection is tried.
            ["Pit:Storage:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=pit",
            [key] = value,
        };
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(settings));
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Sqlite", "00:00:00")]
    [InlineData("Sqlite", "00:01:00.001")]
    [InlineData("Postgres", "00:00:00")]
    public async Task A_sequencer_interval_out_of_range_stops_start_up_on_either_provider(string provider, string value)
    {
        // The sequencer's settings are bound by Storage now, not by Processing: the check must not have been lost.
        var settings = new Dictionary<string, string?> { ["Pit:Processing:SequencerInterval"] = value };
        if (provider == "Postgres")
        {
            settings["Pit:Storage:Provider"] = "Postgres";
            settings["Pit:Storage:ConnectionString"] = "Host=127.0.0.1;Port=1;Username=pit";
        }

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestServer.StartAsync(settings));
        Assert.Contains("Pit:Processing:SequencerInterval", error.Message, StringComparison.Ordinal);
    }
}
