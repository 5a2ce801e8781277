using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>
/// Gives every client a share of the replay bookkeeping, per 5-second bucket of <c>iat</c>: at most
/// <see cref="DpopOptions.ReplayClientShare"/> × <see cref="DpopOptions.ReplayCacheProofsPerSecond"/> × 5 proofs per
/// client, and at most the full rate × 5 proofs over all clients. A client over its share is told to come back when
/// the bucket ends (429 with <c>Retry-After</c>); the others are not affected. Runs in front of whichever
/// <see cref="IDpopReplayCache"/> is registered, per instance, so a shared cache is protected as well.
/// When a bucket's total is reached, clients that have used less than 1/64 of their share there still get in, from a
/// reserve of <see cref="QuietReserve"/> proofs per bucket: a few saturating clients cannot lock out the quiet ones.
/// Only new proofs count: the share is checked before the replay cache and taken after it accepted the proof, so
/// replaying someone's captured proof never eats into that client's share. Requests checked at the same instant may
/// overshoot a share by their number, which the in-memory cache's headroom absorbs.
/// Bound: per bucket at most one counter per admitted proof, so no more counters than the replay cache holds keys.
/// </summary>
internal sealed partial class DpopReplayShares
{
    /// <summary>Proofs per bucket beyond the total kept for quiet clients (within the in-memory cache's headroom).</summary>
    public const int QuietReserve = InMemoryDpopReplayCache.Headroom / 2;

    private readonly BucketRing<Counts> _ring;
    private readonly int _bucketCapacity;
    private readonly int _clientShare;
    private readonly int _quietAllowance;
    private readonly ILogger<DpopReplayShares> _logger;

    public DpopReplayShares(IOptions<PitAuthOptions> options, ILogger<DpopReplayShares> logger)
    {
        var dpop = options.Value.DPoP;
        _bucketCapacity = InMemoryDpopReplayCache.BucketCapacity(dpop);
        _clientShare = Math.Max(1, (int)(_bucketCapacity * dpop.ReplayClientShare));
        _quietAllowance = Math.Max(1, _clientShare / 64);
        _ring = new BucketRing<Counts>(InMemoryDpopReplayCache.BucketSeconds, InMemoryDpopReplayCache.WindowSeconds(dpop), static () => new Counts());
        _logger = logger;
    }

    /// <summary>Most proofs one client may present per bucket.</summary>
    public int ClientShare => _clientShare;

    /// <summary>
    /// Whether <paramref name="client"/> has share left in the bucket of <paramref name="issuedAt"/>. When not,
    /// <c>RetryAfterSeconds</c> says when that bucket ends.
    /// </summary>
    public (bool Granted, int RetryAfterSeconds) Check(string client, long issuedAt, long nowSeconds)
    {
        var limits = (Client: client, Share: _clientShare, Quiet: _quietAllowance, Capacity: _bucketCapacity);
        if (!_ring.TryUpdate(issuedAt, limits, static (counts, s) => counts.Check(s.Client, s.Share, s.Quiet, s.Capacity), out var verdict))
        {
            // Older than the window: the replay check refuses it; nothing to count.
            return (true, 0);
        }

        if (verdict == Verdict.Granted)
        {
            return (true, 0);
        }

        if (verdict == Verdict.BucketFull)
        {
            LogBucketFull(_logger, _bucketCapacity);
        }

        return (false, _ring.SecondsUntilBucketEnds(issuedAt, nowSeconds));
    }

    /// <summary>Counts one new proof of <paramref name="client"/> in the bucket of <paramref name="issuedAt"/>.</summary>
    public void Take(string client, long issuedAt) =>
        _ring.TryUpdate(issuedAt, client, static (counts, c) => counts.Take(c), out _);

    private enum Verdict
    {
        Granted,
        OverShare,
        BucketFull,
    }

    private sealed class Counts
    {
        private readonly Dictionary<string, int> _perClient = new(StringComparer.Ordinal);
        private int _total;

        public Verdict Check(string client, int share, int quiet, int capacity)
        {
            var taken = _perClient.GetValueOrDefault(client);
            return taken >= share ? Verdict.OverShare
                : _total < capacity ? Verdict.Granted
                : taken < quiet && _total < capacity + QuietReserve ? Verdict.Granted
                : Verdict.BucketFull;
        }

        public bool Take(string client)
        {
            _perClient[client] = _perClient.GetValueOrDefault(client) + 1;
            _total++;
            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "DPoP proofs of one 5-second bucket reached the instance's capacity ({Capacity}); refusing further proofs of that bucket with 429")]
    private static partial void LogBucketFull(ILogger logger, int capacity);
}
