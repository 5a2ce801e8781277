using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Pit.Server.Storage;

namespace Pit.Server.Patients;

/// <summary>
/// The whole continuation state of a search: sort, page size, filter bounds, the last row returned and the tenant
/// scope it was made for. Sent to clients sealed with AES-GCM (<see cref="SearchCursorProtector"/>).
/// </summary>
internal sealed record SearchCursor(bool Descending, int Count, long? From, long? To, PagePosition After, string Scope)
{
    /// <summary>The scope of a cross-organisation reader.</summary>
    public const string AllOrganisations = "*";

    private const byte FormatVersion = 1;

    public byte[] ToBytes()
    {
        var id = Encoding.UTF8.GetBytes(After.Id);
        var scope = Encoding.UTF8.GetBytes(Scope);
        var bytes = new byte[3 + 8 + 8 + 8 + 1 + id.Length + 1 + scope.Length];
        bytes[0] = FormatVersion;
        bytes[1] = (byte)((Descending ? 1 : 0) | (From.HasValue ? 2 : 0) | (To.HasValue ? 4 : 0));
        bytes[2] = (byte)Count;
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(3), From ?? 0);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(11), To ?? 0);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(19), After.LastUpdated);
        bytes[27] = (byte)id.Length;
        id.CopyTo(bytes.AsSpan(28));
        bytes[28 + id.Length] = (byte)scope.Length;
        scope.CopyTo(bytes.AsSpan(29 + id.Length));
        return bytes;
    }

    public static SearchCursor? FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 29 || bytes[0] != FormatVersion)
        {
            return null;
        }

        var flags = bytes[1];
        var idLength = bytes[27];
        if (bytes.Length < 29 + idLength)
        {
            return null;
        }

        var scopeLength = bytes[28 + idLength];
        if (bytes.Length != 29 + idLength + scopeLength || bytes[2] is < 1 or > PatientSearchQuery.MaxCount)
        {
            return null;
        }

        return new SearchCursor(
            (flags & 1) != 0,
            bytes[2],
            (flags & 2) != 0 ? BinaryPrimitives.ReadInt64BigEndian(bytes[3..]) : null,
            (flags & 4) != 0 ? BinaryPrimitives.ReadInt64BigEndian(bytes[11..]) : null,
            new PagePosition(BinaryPrimitives.ReadInt64BigEndian(bytes[19..]), Encoding.UTF8.GetString(bytes.Slice(28, idLength))),
            Encoding.UTF8.GetString(bytes.Slice(29 + idLength, scopeLength)));
    }
}

/// <summary>
/// Seals cursors with AES-256-GCM under the shared <c>cursor</c> secret, so they are opaque to clients,
/// tamper-evident, and valid on every instance over the same store. After a key rotation, cursors sealed under the
/// retired key (<c>Pit:Secrets:cursorPrevious</c>, when configured) are still opened; new ones use the current key.
/// </summary>
/// <remarks>
/// The key is loaded on first use and kept only once loaded: a load that fails (the store blinked) fails the
/// requests that waited for it, and the next use tries again.
/// </remarks>
internal sealed class SearchCursorProtector(SharedSecrets secrets)
{
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private Task<byte[]>? _key;

    private Task<byte[]> KeyAsync()
    {
        var current = Volatile.Read(ref _key);
        if (current is { IsFaulted: false, IsCanceled: false })
        {
            return current;
        }

        // Concurrent callers share one load; a failed one is replaced by whoever comes next.
        var fresh = secrets.GetAsync("cursor", CancellationToken.None);
        return Interlocked.CompareExchange(ref _key, fresh, current) == current ? fresh : Volatile.Read(ref _key)!;
    }

    public async Task<string> ProtectAsync(SearchCursor cursor)
    {
        var key = await KeyAsync();
        var plain = cursor.ToBytes();
        var sealedBytes = new byte[NonceSize + plain.Length + TagSize];
        RandomNumberGenerator.Fill(sealedBytes.AsSpan(0, NonceSize));
        using var aes = new AesGcm(key, TagSize);
        aes.Encrypt(sealedBytes.AsSpan(0, NonceSize), plain, sealedBytes.AsSpan(NonceSize, plain.Length), sealedBytes.AsSpan(NonceSize + plain.Length));
        return WebEncoders.Base64UrlEncode(sealedBytes);
    }

    /// <summary>The cursor, or null when it is malformed, forged or truncated.</summary>
    public async Task<SearchCursor?> UnprotectAsync(string text)
    {
        byte[] sealedBytes;
        try
        {
            sealedBytes = WebEncoders.Base64UrlDecode(text);
        }
        catch (FormatException)
        {
            return null;
        }

        if (sealedBytes.Length < NonceSize + TagSize + 29 || sealedBytes.Length > 1024)
        {
            return null;
        }

        var plain = new byte[sealedBytes.Length - NonceSize - TagSize];
        var opened = TryOpen(await KeyAsync(), sealedBytes, plain)
            || (secrets.GetPrevious("cursor") is { } previous && TryOpen(previous, sealedBytes, plain));
        return opened ? SearchCursor.FromBytes(plain) : null;
    }

    private static bool TryOpen(byte[] key, byte[] sealedBytes, byte[] plain)
    {
        try
        {
            using var aes = new AesGcm(key, TagSize);
            aes.Decrypt(sealedBytes.AsSpan(0, NonceSize), sealedBytes.AsSpan(NonceSize, plain.Length),
                sealedBytes.AsSpan(NonceSize + plain.Length), plain);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }
}
