using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Options;
using Pit.Server.Auth;

namespace Pit.Benchmarks;

/// <summary>
/// The in-memory DPoP replay cache at its design point: one full 66-second <c>iat</c> window at 20 000 proofs/s
/// (1.32 million entries) inserted into a fresh cache per operation batch. With <c>OperationsPerInvoke</c> equal to the
/// entry count, BenchmarkDotNet's "Allocated" column is the bytes per entry and "Mean" the insert cost.
/// </summary>
[MemoryDiagnoser]
public class ReplayCacheBenchmarks
{
    private const int ProofsPerSecond = 20_000;
    private const int WindowSeconds = 66;
    private const int Entries = ProofsPerSecond * WindowSeconds;
    private const long Start = 1_800_000_000;

    private readonly IOptions<PitAuthOptions> _options = Options.Create(new PitAuthOptions { DPoP = new DpopOptions { ReplayCacheProofsPerSecond = ProofsPerSecond } });
    private DpopReplayEntry[] _entries = null!;

    [GlobalSetup]
    public void Setup()
    {
        var keys = RandomNumberGenerator.GetBytes(Entries * 16);
        _entries = new DpopReplayEntry[Entries];
        for (var i = 0; i < Entries; i++)
        {
            var key = new UInt128(BitConverter.ToUInt64(keys, i * 16), BitConverter.ToUInt64(keys, (i * 16) + 8));
            var iat = Start + (i / ProofsPerSecond);
            _entries[i] = new DpopReplayEntry(key, iat, iat + 61);
        }
    }

    [Benchmark(OperationsPerInvoke = Entries, Description = "Replay cache: insert one window at 20 000 proofs/s (Allocated = bytes per entry)")]
    public async Task<int> FillOneWindow()
    {
        var cache = new InMemoryDpopReplayCache(_options);
        var added = 0;
        foreach (var entry in _entries)
        {
            added += await cache.TryAddAsync(entry, default) ? 1 : 0;
        }

        return added;
    }
}
