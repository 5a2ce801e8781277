using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Pit.Server.Auth;

/// <summary>
/// Stateless DPoP nonces: the time bucket and an HMAC over (purpose, bucket). Any instance holding the same key
/// accepts them; a nonce is valid in its bucket and the one after.
/// </summary>
internal sealed class DpopNonces
{
    private const int MacLength = 16;
    private readonly byte[] _key;
    private readonly byte[]? _previousKey;
    private readonly long _bucketSeconds;
    private readonly TimeProvider _time;

    public DpopNonces(IOptions<PitAuthOptions> options, TimeProvider time)
    {
        var dpop = options.Value.DPoP;
        _key = string.IsNullOrWhiteSpace(dpop.NonceKey) ? RandomNumberGenerator.GetBytes(32) : Convert.FromBase64String(dpop.NonceKey);
        // The retired key of a rotation: its nonces are still accepted, new ones are made with the current key.
        _previousKey = string.IsNullOrWhiteSpace(dpop.PreviousNonceKey) ? null : Convert.FromBase64String(dpop.PreviousNonceKey);
        if (_key.Length < 32 || _previousKey is { Length: < 32 })
        {
            throw new InvalidOperationException("Pit:Auth:DPoP:NonceKey and PreviousNonceKey must be base64 of at least 32 bytes.");
        }

        _bucketSeconds = Math.Max(10, dpop.NonceBucketSeconds);
        _time = time;
    }

    public string Create(string purpose) => Encode(purpose, CurrentBucket());

    public bool IsValid(string? nonce, string purpose)
    {
        if (nonce is null || nonce.Length > 64)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[48];
        if (!Base64Url.TryDecodeFromChars(nonce, bytes, out var written) || written != 8 + MacLength)
        {
            return false;
        }

        var bucket = BinaryPrimitives.ReadInt64BigEndian(bytes);
        var current = CurrentBucket();
        if (bucket != current && bucket != current - 1)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(bytes.Slice(8, MacLength), Mac(_key, purpose, bucket))
            || (_previousKey is not null && CryptographicOperations.FixedTimeEquals(bytes.Slice(8, MacLength), Mac(_previousKey, purpose, bucket)));
    }

    private long CurrentBucket() => _time.GetUtcNow().ToUnixTimeSeconds() / _bucketSeconds;

    private string Encode(string purpose, long bucket)
    {
        var bytes = new byte[8 + MacLength];
        BinaryPrimitives.WriteInt64BigEndian(bytes, bucket);
        Mac(_key, purpose, bucket).CopyTo(bytes, 8);
        return Base64Url.EncodeToString(bytes);
    }

    private static byte[] Mac(byte[] key, string purpose, long bucket)
    {
        var input = new byte[Encoding.UTF8.GetByteCount(purpose) + 9];
        var length = Encoding.UTF8.GetBytes(purpose, input);
        BinaryPrimitives.WriteInt64BigEndian(input.AsSpan(length + 1), bucket);
        return HMACSHA256.HashData(key, input)[..MacLength];
    }
}
