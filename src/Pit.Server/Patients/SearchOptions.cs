using Microsoft.Extensions.Options;

namespace Pit.Server.Patients;

/// <summary>Options of section <c>Pit:Search</c>: the size of a search page.</summary>
internal sealed class SearchOptions
{
    /// <summary>The default <see cref="MaxPageBytes"/>: 4 MiB.</summary>
    public const long DefaultMaxPageBytes = 4 * 1024 * 1024;

    /// <summary>
    /// The most bytes of Patient JSON one searchset page carries (default 4 MiB), besides <c>_count</c>: a page ends
    /// before the entry that would pass it, and its <c>next</c> link continues with that entry. A Patient larger than
    /// this is served alone on its page. It bounds the rows a search loads, and so the memory a reader that stops
    /// reading can hold: about this much plus one entry plus Kestrel's response buffer.
    /// </summary>
    public long MaxPageBytes { get; set; } = DefaultMaxPageBytes;
}

/// <summary>Checks <see cref="SearchOptions"/> at start-up; every message names its configuration key.</summary>
internal sealed class SearchOptionsValidator : IValidateOptions<SearchOptions>
{
    public const long Smallest = 1024;
    public const long Largest = 1024L * 1024 * 1024;

    public ValidateOptionsResult Validate(string? name, SearchOptions options) =>
        options.MaxPageBytes is < Smallest or > Largest
            ? ValidateOptionsResult.Fail($"Pit:Search:MaxPageBytes must be from {Smallest} (1 KiB) to {Largest} (1 GiB) bytes; got {options.MaxPageBytes}.")
            : ValidateOptionsResult.Success;
}
