using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Auth;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>
/// The replay cache and the client shares in front of it, driven through the real proof validator with real signed
/// proofs and a fake clock: only a proof seen before is a replay, and one client's flood never refuses another.
/// </summary>
public sealed class ReplayFairnessTests : IDisposable
{
    private static readonly Uri Url = new("https://api.pit.test.nhn.no/v1/Patient");

    // Small on purpose: 100 proofs/s per instance, so a client's share is 25 per second (125 per 5-s bucket).
    private readonly IOptions<PitAuthOptions> _options = Options.Create(new PitAuthOptions
    {
        DPoP = new DpopOptions { ReplayCacheProofsPerSecond = 100, ReplayClientShare = 0.25 },
    });

    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeSeconds(1_800_000_000));
    private readonly DpopKey _noisyKey = DpopKey.CreateEcP256();
    private readonly DpopKey _quietKey = DpopKey.CreateEcP256();
    private readonly DpopProofValidator _validator;

    public ReplayFairnessTests()
    {
        var shares = new DpopReplayShares(_options, NullLogger<DpopReplayShares>.Instance);
        _validator = new DpopProofValidator(_options, new InMemoryDpopReplayCache(_options), shares, new DpopNonces(_options, _time), _time);
    }

    public void Dispose()
    {
        _noisyKey.Dispose();
        _quietKey.Dispose();
    }

    [Fact]
    public async Task A_noisy_client_at_full_speed_for_longer_than_the_window_never_refuses_a_quiet_client()
    {
        var noisyRefused = 0;
        for (var second = 0; second < 90; second++)
        {
            // The noisy client sends 40 fresh proofs a second, above its share of 25; the quiet one sends 2.
            for (var i = 0; i < 40; i++)
            {
                var noisy = await ValidateAsync(_noisyKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "noisy|974762501");
                if (!noisy.Succeeded)
                {
                    Assert.Equal(DpopError.OverShare, noisy.Error);
                    noisyRefused++;
                }

                if (i % 20 == 0)
                {
                    var quiet = await ValidateAsync(_quietKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "quiet|123456785");
                    Assert.True(quiet.Succeeded, $"quiet client refused ({quiet.Error}) at second {second}");
                }
            }

            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.True(noisyRefused > 0, "the noisy client was never held to its share");
    }

    [Fact]
    public async Task Several_saturating_clients_filling_the_instance_still_leave_room_for_a_quiet_client()
    {
        // Six clients at their full share are 150 % of the instance's capacity for a bucket.
        for (var i = 0; i < 125; i++)
        {
            for (var client = 0; client < 6; client++)
            {
                await ValidateAsync(_noisyKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), $"noisy-{client}|974762501");
            }
        }

        var quiet = await ValidateAsync(_quietKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "quiet|123456785");
        Assert.True(quiet.Succeeded, $"quiet client refused: {quiet.Error}");
    }

    [Fact]
    public async Task A_client_over_its_share_is_told_when_its_bucket_ends()
    {
        for (var i = 0; i < 125; i++)
        {
            Assert.True((await ValidateAsync(_noisyKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "noisy|974762501")).Succeeded);
        }

        _time.Advance(TimeSpan.FromSeconds(2));
        var over = await ValidateAsync(_noisyKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "noisy|974762501");
        Assert.Equal(DpopError.OverShare, over.Error);
        Assert.Equal(3, over.RetryAfterSeconds);

        _time.Advance(TimeSpan.FromSeconds(3));
        Assert.True((await ValidateAsync(_noisyKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "noisy|974762501")).Succeeded);
    }

    [Fact]
    public async Task Only_a_proof_seen_before_is_a_replay_and_replays_do_not_use_up_the_share()
    {
        var proof = _quietKey.CreateProof(HttpMethod.Get, Url, null, options: Now());
        Assert.True((await ValidateAsync(proof, "quiet|123456785")).Succeeded);
        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(DpopError.Replayed, (await ValidateAsync(proof, "quiet|123456785")).Error);
        }

        // 200 replays later the client still has its whole share for new proofs.
        for (var i = 0; i < 124; i++)
        {
            var fresh = await ValidateAsync(_quietKey.CreateProof(HttpMethod.Get, Url, null, options: Now()), "quiet|123456785");
            Assert.True(fresh.Succeeded, $"fresh proof {i} refused: {fresh.Error}");
        }
    }

    [Fact]
    public async Task A_replay_is_refused_for_the_whole_window_and_the_proof_then_fails_its_iat_check()
    {
        var proof = _quietKey.CreateProof(HttpMethod.Get, Url, null, options: Now());
        Assert.True((await ValidateAsync(proof, "quiet|123456785")).Succeeded);
        for (var second = 0; second <= 60; second += 5)
        {
            Assert.Equal(DpopError.Replayed, (await ValidateAsync(proof, "quiet|123456785")).Error);
            _time.Advance(TimeSpan.FromSeconds(5));
        }

        Assert.Equal(DpopError.IssuedAtOutOfWindow, (await ValidateAsync(proof, "quiet|123456785")).Error);
    }

    [Fact]
    public void In_memory_cache_is_sized_for_20000_proofs_per_second_over_the_whole_window_by_default()
    {
        var cache = new InMemoryDpopReplayCache(Options.Create(new PitAuthOptions()));
        Assert.True(cache.MaxEntries >= 20_000L * InMemoryDpopReplayCache.WindowSeconds(new DpopOptions()));
    }

    private DpopProofOptions Now() => new() { IssuedAt = _time.GetUtcNow() };

    private ValueTask<DpopProofResult> ValidateAsync(string proof, string client) =>
        _validator.ValidateAsync(new DpopProofRequest(new(proof), "GET", Url.ToString(), null, null, false, "api", client), default);
}
