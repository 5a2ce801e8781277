using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.Tokens;
using Pit.TestSupport;

namespace Pit.Server.Tests.Auth;

/// <summary>The shared security primitives (Pit.Security): thumbprints, JWK parameters, the bounded structures.</summary>
public sealed class SharedPrimitivesTests
{
    // RFC 7638 §3.1's example key and its thumbprint.
    private const string Rfc7638N =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    private const string Rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    [Fact]
    public void Rsa_thumbprint_matches_the_RFC_7638_example()
    {
        Assert.Equal(Rfc7638Thumbprint, JwkThumbprint.Rsa("AQAB", Rfc7638N));
        Assert.Equal(Rfc7638Thumbprint, JwkThumbprint.Compute(m => m switch { "kty" => "RSA", "e" => "AQAB", "n" => Rfc7638N, _ => null }));
    }

    [Theory]
    [InlineData("RSA")]
    [InlineData("EC")]
    public void Thumbprint_agrees_with_Microsoft_IdentityModel(string kty)
    {
        using var key = kty == "RSA" ? DpopKey.CreateRsa() : DpopKey.CreateEcP256();
        var expected = Base64UrlEncoder.Encode(new JsonWebKey(key.PublicJwk.ToJsonString()).ComputeJwkThumbprint());
        Assert.Equal(expected, key.Thumbprint);
        Assert.Equal(expected, JwkThumbprint.Compute(m => key.PublicJwk[m]?.GetValue<string>()));
    }

    [Theory]
    [InlineData("AQAB\",\"x\":\"1")]
    [InlineData("")]
    [InlineData("not base64url!")]
    public void Thumbprint_of_a_member_that_is_not_base64url_is_refused(string e) =>
        Assert.Throws<ArgumentException>(() => JwkThumbprint.Rsa(e, Rfc7638N));

    [Fact]
    public void Thumbprint_of_an_unknown_curve_or_key_type_is_refused()
    {
        Assert.Throws<ArgumentException>(() => JwkThumbprint.Ec("secp256k1", "AQAB", "AQAB"));
        Assert.Throws<ArgumentException>(() => JwkThumbprint.Compute(m => m == "kty" ? "oct" : "AQAB"));
    }

    [Fact]
    public void Private_EC_JWK_round_trips_through_its_parameters()
    {
        using var key = DpopKey.CreateEcP256();
        var jwk = key.PrivateJwk();
        using var ec = ECDsa.Create(JwkParameters.Ec(m => jwk[m]?.GetValue<string>()));
        var data = "signed"u8.ToArray();
        Assert.True(ec.VerifyData(data, key.Sign(data), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
    }

    [Fact]
    public void Dpop_algorithms_are_the_nine_asymmetric_ones_HelseID_advertises()
    {
        Assert.Equal(AuthAssert.AllProofAlgorithms, string.Join(' ', DpopAlgorithms.All));
        Assert.False(DpopAlgorithms.IsSupported("HS256"));
        Assert.False(DpopAlgorithms.IsSupported("none"));
    }

    [Fact]
    public void Bounded_cache_filled_far_beyond_its_capacity_never_holds_more()
    {
        var cache = new BoundedCache<int, string>(100);
        for (var i = 0; i < 10_000; i++)
        {
            cache.Set(i, "v" + i);
            Assert.True(cache.Count <= 100, $"{cache.Count} entries after {i + 1} inserts");
        }

        Assert.True(cache.TryGetValue(9_999, out var newest));
        Assert.Equal("v9999", newest);
        Assert.False(cache.TryGetValue(0, out _));
    }

    [Fact]
    public void Bounded_cache_keeps_an_entry_in_use_across_generations()
    {
        var cache = new BoundedCache<int, string>(10);
        cache.Set(-1, "hot");
        for (var i = 0; i < 1_000; i++)
        {
            cache.Set(i, "cold");
            Assert.True(cache.TryGetValue(-1, out _), $"hot entry lost after {i + 1} inserts");
        }
    }

    [Fact]
    public void Time_bucketed_set_refuses_a_key_seen_in_its_bucket_and_fills_to_its_bound()
    {
        var set = new TimeBucketedSet(bucketSeconds: 5, windowSeconds: 66, bucketCapacity: 3);
        const long T = 1_800_000_000;
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(1, T));
        Assert.Equal(TimeBucketedSetResult.Seen, set.TryAdd(1, T + 1));
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(2, T));
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(3, T));
        Assert.Equal(TimeBucketedSetResult.Full, set.TryAdd(4, T));
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(4, T + 5));
        Assert.Equal(16 * 3, set.MaxEntries);
    }

    [Fact]
    public void Time_bucketed_set_drops_a_bucket_whole_once_a_window_later_and_refuses_older_timestamps()
    {
        var set = new TimeBucketedSet(bucketSeconds: 5, windowSeconds: 66, bucketCapacity: 3);
        const long T = 1_800_000_000;
        for (var k = 1u; k <= 3; k++)
        {
            Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(k, T));
        }

        // 16 buckets later the slot belongs to a new bucket: the old one is gone in one step, whatever it held.
        var later = T + (16 * 5);
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(1, later));
        Assert.Equal(TimeBucketedSetResult.Added, set.TryAdd(2, later));
        Assert.Equal(TimeBucketedSetResult.Expired, set.TryAdd(9, T));
    }
}
