using Hl7.Fhir.Model;

namespace Pit.Client;

/// <summary>One page of a Patient search: the Bundle as received plus each entry's exact JSON.</summary>
public sealed class PatientPage
{
    private readonly Lazy<Bundle> _bundle;

    internal PatientPage(Uri requestUrl, string bundleJson, IReadOnlyList<PatientPageEntry> entries, Uri? next, Uri? self)
    {
        RequestUrl = requestUrl;
        Entries = entries;
        NextLink = next;
        SelfLink = self;
        _bundle = new Lazy<Bundle>(() => FhirJson.Parse<Bundle>(bundleJson));
    }

    /// <summary>The URL this page was read from.</summary>
    public Uri RequestUrl { get; }

    /// <summary>The page as a FHIR Bundle (parsed on first use).</summary>
    public Bundle Bundle => _bundle.Value;

    /// <summary>The Patient entries in server order.</summary>
    public IReadOnlyList<PatientPageEntry> Entries { get; }

    /// <summary>The <c>next</c> link (holding the opaque cursor), or null on the last page.</summary>
    public Uri? NextLink { get; }

    /// <summary>The <c>self</c> link: the parameters the server actually used.</summary>
    public Uri? SelfLink { get; }

    /// <summary>
    /// Whether the server accepted to hold this request (<c>Preference-Applied: wait</c>). False when no wait was asked,
    /// or the server answered at once because the client already had its most waiting requests.
    /// </summary>
    public bool WaitApplied { get; internal set; }

    /// <summary>
    /// The <c>meta.lastUpdated</c> of the last entry exactly as the server wrote it (full precision), or null for an
    /// empty page. A change-feed consumer polls with <c>_lastUpdated=gt</c> this value.
    /// </summary>
    public string? LastUpdated => Entries.Count == 0 ? null : Entries[^1].LastUpdated;
}

/// <summary>One Patient of a search page.</summary>
public sealed class PatientPageEntry
{
    private readonly Lazy<Patient> _patient;

    internal PatientPageEntry(string json, string? id, string? versionId, string? lastUpdated, string? fullUrl)
    {
        Json = json;
        Id = id;
        VersionId = versionId;
        LastUpdated = lastUpdated;
        FullUrl = fullUrl;
        _patient = new Lazy<Patient>(() => FhirJson.Parse<Patient>(json));
    }

    /// <summary>The resource's JSON exactly as the server sent it.</summary>
    public string Json { get; }

    /// <summary>The Patient's id.</summary>
    public string? Id { get; }

    /// <summary><c>meta.versionId</c>.</summary>
    public string? VersionId { get; }

    /// <summary><c>meta.lastUpdated</c> exactly as the server wrote it (no precision lost).</summary>
    public string? LastUpdated { get; }

    /// <summary><c>entry.fullUrl</c>.</summary>
    public string? FullUrl { get; }

    /// <summary>The resource as a Firely <see cref="Hl7.Fhir.Model.Patient"/> (parsed on first use).</summary>
    public Patient Patient => _patient.Value;
}
