using System.Collections.Concurrent;

namespace Pit.Security;

/// <summary>
/// A concurrent cache with a hard bound and O(1) eviction: entries go into the current generation; when it holds
/// half the capacity, the previous generation is dropped whole and the current one becomes the previous. Lookups
/// see both generations, and a hit in the previous one is carried into the current one, so entries in use survive.
/// No sweep ever runs. Bound: <see cref="Capacity"/> entries, plus at most one per thread writing at that instant.
/// </summary>
internal sealed class BoundedCache<TKey, TValue>
    where TKey : notnull
{
    private readonly int _generationCapacity;
    private readonly IEqualityComparer<TKey>? _comparer;
    private readonly Lock _rotation = new();
    private Generation _current;
    private Generation _previous;

    /// <param name="capacity">Most entries held (at least 2).</param>
    /// <param name="comparer">Key comparer, or the default.</param>
    public BoundedCache(int capacity, IEqualityComparer<TKey>? comparer = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 2);
        Capacity = capacity;
        _generationCapacity = capacity / 2;
        _comparer = comparer;
        _current = new Generation(comparer);
        _previous = new Generation(comparer);
    }

    /// <summary>Most entries held.</summary>
    public int Capacity { get; }

    /// <summary>Entries held now (both generations).</summary>
    public int Count => Volatile.Read(ref _current).Items.Count + Volatile.Read(ref _previous).Items.Count;

    /// <summary>Looks <paramref name="key"/> up in both generations.</summary>
    public bool TryGetValue(TKey key, out TValue value)
    {
        if (Volatile.Read(ref _current).Items.TryGetValue(key, out value!))
        {
            return true;
        }

        if (Volatile.Read(ref _previous).Items.TryGetValue(key, out value!))
        {
            Set(key, value);
            return true;
        }

        return false;
    }

    /// <summary>Adds or replaces the entry for <paramref name="key"/>.</summary>
    public void Set(TKey key, TValue value)
    {
        var generation = Volatile.Read(ref _current);
        if (Volatile.Read(ref generation.Count) >= _generationCapacity)
        {
            generation = Rotate(generation);
        }

        if (generation.Items.TryAdd(key, value))
        {
            Interlocked.Increment(ref generation.Count);
        }
        else
        {
            generation.Items[key] = value;
        }
    }

    /// <summary>Removes the entry for <paramref name="key"/> from both generations.</summary>
    public void Remove(TKey key)
    {
        Volatile.Read(ref _current).Items.TryRemove(key, out _);
        Volatile.Read(ref _previous).Items.TryRemove(key, out _);
    }

    private Generation Rotate(Generation full)
    {
        lock (_rotation)
        {
            if (ReferenceEquals(_current, full))
            {
                Volatile.Write(ref _previous, full);
                Volatile.Write(ref _current, new Generation(_comparer));
            }

            return _current;
        }
    }

    private sealed class Generation(IEqualityComparer<TKey>? comparer)
    {
        public readonly ConcurrentDictionary<TKey, TValue> Items = new(comparer);
        public int Count;
    }
}
