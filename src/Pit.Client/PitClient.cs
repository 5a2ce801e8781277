using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Task = System.Threading.Tasks.Task;

namespace Pit.Client;

/// <summary>
/// Typed calls to a PIT server: submit a Patient, follow its status, read a Patient, and page through searches.
/// Non-success answers throw <see cref="PitApiException"/> carrying the server's OperationOutcome.
/// </summary>
public sealed partial class PitClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly IDisposable? _ownedTokenHttp;

    /// <summary>
    /// Wraps an <see cref="HttpClient"/> that already authenticates (a <see cref="DpopHandler"/> in its chain) and has
    /// <see cref="HttpClient.BaseAddress"/> set to the server; the caller keeps ownership of it.
    /// </summary>
    /// <param name="httpClient">The configured client.</param>
    /// <param name="tokens">Optional: the token source, exposed as <see cref="Tokens"/>.</param>
    public PitClient(HttpClient httpClient, IDpopTokenSource? tokens = null)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        if (httpClient.BaseAddress is null)
        {
            throw new ArgumentException("The HttpClient needs a BaseAddress (the PIT server).", nameof(httpClient));
        }

        _http = httpClient;
        Tokens = tokens;
    }

    private PitClient(HttpClient httpClient, IDpopTokenSource tokens, IDisposable tokenHttp)
        : this(httpClient, tokens)
    {
        _ownsHttp = true;
        _ownedTokenHttp = tokenHttp;
    }

    /// <summary>The token source, when known (for example to show what a token holds).</summary>
    public IDpopTokenSource? Tokens { get; }

    /// <summary>The server's base address.</summary>
    public Uri BaseAddress => _http.BaseAddress!;

    /// <summary>
    /// Builds a client with the whole chain: retries on 429/503 honouring <c>Retry-After</c>, then DPoP (a fresh proof
    /// on every attempt), over one connection pool shared with the HelseID token client.
    /// </summary>
    /// <param name="options">Server, HelseID registration and retry settings.</param>
    public static PitClient Create(PitClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.BaseAddress);
        ArgumentNullException.ThrowIfNull(options.HelseId);

        var primary = options.PrimaryHandler ?? new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        var tokenHttp = new HttpClient(primary, disposeHandler: options.PrimaryHandler is null) { Timeout = options.Timeout };
        var tokens = new HelseIdTokenClient(tokenHttp, options.HelseId);
        var dpop = new DpopHandler(tokens) { InnerHandler = new NonDisposingHandler(primary) };
        var resilience = new ResilienceHandler(CreateRetryPipeline(options)) { InnerHandler = dpop };
        var baseAddress = options.BaseAddress.AbsoluteUri.EndsWith('/') ? options.BaseAddress : new Uri(options.BaseAddress.AbsoluteUri + "/");
        var http = new HttpClient(resilience, disposeHandler: true) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };
        return new PitClient(http, tokens, tokenHttp);
    }

    /// <summary>The retry pipeline used by <see cref="Create"/>: only 429 and 503 are retried, honouring <c>Retry-After</c>.</summary>
    /// <param name="options">Retry settings.</param>
    public static ResiliencePipeline<HttpResponseMessage> CreateRetryPipeline(PitClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = options.HelseId?.TimeProvider ?? TimeProvider.System };
        AddRetries(builder, options);
        return builder.Build();
    }

    internal static void AddRetries(ResiliencePipelineBuilder<HttpResponseMessage> builder, PitClientOptions options) => builder
        .AddRetry(new HttpRetryStrategyOptions
        {
            MaxRetryAttempts = Math.Max(1, options.MaxRetryAttempts),
            Delay = options.RetryDelay,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            ShouldRetryAfterHeader = true,
            MaxDelay = TimeSpan.FromMinutes(2),
            // A 429/503 means the request was not taken; other failures could have been, so they surface.
            ShouldHandle = args => ValueTask.FromResult(
                args.Outcome.Result?.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable),
        })
        .AddTimeout(options.Timeout);

    /// <summary>Submits a Patient (<c>POST /v1/Patient</c>).</summary>
    /// <param name="patient">The Patient; the server assigns ids, so any id is ignored.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The submission's status URL (the <c>Content-Location</c> of the 202).</returns>
    public Task<Uri> SubmitPatientAsync(Patient patient, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(patient);
        return SubmitPatientJsonAsync(FhirJson.Serialize(patient), cancellationToken);
    }

    /// <summary>Submits Patient JSON as it is (<c>POST /v1/Patient</c>); the server validates it.</summary>
    /// <param name="patientJson">A FHIR R4 Patient as JSON.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>The submission's status URL (the <c>Content-Location</c> of the 202).</returns>
    public async Task<Uri> SubmitPatientJsonAsync(string patientJson, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(patientJson);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/Patient")
        {
            Content = new StringContent(patientJson, Encoding.UTF8, FhirJson.MediaType),
        };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(FhirJson.MediaType));
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
        var location = response.Content.Headers.ContentLocation ?? response.Headers.Location
            ?? throw new PitApiException(response.StatusCode, null, null, "The server accepted the Patient but sent no Content-Location status URL.");
        return location.IsAbsoluteUri ? location : new Uri(response.RequestMessage?.RequestUri ?? BaseAddress, location);
    }

    /// <summary>Asks a submission's status URL where it is.</summary>
    /// <param name="statusUrl">The URL <see cref="SubmitPatientAsync"/> returned.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public async Task<SubmissionStatus> GetSubmissionStatusAsync(Uri statusUrl, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(statusUrl);
        using var request = new HttpRequestMessage(HttpMethod.Get, statusUrl);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(FhirJson.MediaType));
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var outcome = FhirJson.TryParseOutcome(body);
        if (response.StatusCode == HttpStatusCode.Accepted)
        {
            return new SubmissionStatus(statusUrl, SubmissionState.Pending, null, outcome);
        }

        if (response.IsSuccessStatusCode)
        {
            var failed = outcome?.Issue.Any(i => i.Severity is OperationOutcome.IssueSeverity.Error or OperationOutcome.IssueSeverity.Fatal) == true;
            var patientId = PatientReference().Match(body) is { Success: true } m ? m.Groups["id"].Value : null;
            return new SubmissionStatus(statusUrl, failed ? SubmissionState.Failed : SubmissionState.Completed, failed ? null : patientId, outcome);
        }

        // The FHIR async pattern reports a failed job with an error status and an OperationOutcome; answers about the
        // request itself (authentication, access, unknown URL, throttling) are errors of this call instead.
        if (outcome is not null && (int)response.StatusCode is not (401 or 403 or 404 or 405 or 429 or 503))
        {
            return new SubmissionStatus(statusUrl, SubmissionState.Failed, null, outcome);
        }

        throw CreateException(response, body);
    }

    /// <summary>Polls a status URL until the submission is processed or failed.</summary>
    /// <param name="statusUrl">The URL <see cref="SubmitPatientAsync"/> returned.</param>
    /// <param name="pollInterval">Wait between polls; 500 ms when null.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task<SubmissionStatus> WaitForSubmissionAsync(Uri statusUrl, TimeSpan? pollInterval = null, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var status = await GetSubmissionStatusAsync(statusUrl, cancellationToken).ConfigureAwait(false);
            if (status.State != SubmissionState.Pending)
            {
                return status;
            }

            await Task.Delay(pollInterval ?? TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Reads one Patient (<c>GET /v1/Patient/{id}</c>).</summary>
    /// <param name="id">The Patient's id.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public async Task<Patient> ReadPatientAsync(string id, CancellationToken cancellationToken = default) =>
        FhirJson.Parse<Patient>(await ReadPatientJsonAsync(id, cancellationToken).ConfigureAwait(false));

    /// <summary>Reads one Patient's JSON exactly as the server sends it.</summary>
    /// <param name="id">The Patient's id.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public async Task<string> ReadPatientJsonAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/Patient/" + Uri.EscapeDataString(id));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(FhirJson.MediaType));
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
        return await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every Patient matching <paramref name="search"/>, following <c>next</c> links page by page.</summary>
    /// <param name="search">Filters, page size and order; all Patients in the default order when null.</param>
    /// <param name="cancellationToken">Stops the enumeration.</param>
    public async IAsyncEnumerable<Patient> SearchAsync(PatientSearch? search = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var page in SearchPagesAsync(search, cancellationToken).ConfigureAwait(false))
        {
            foreach (var entry in page.Entries)
            {
                yield return entry.Patient;
            }
        }
    }

    /// <summary>
    /// The pages of a search, following <c>next</c> links. Each page exposes its Bundle and each entry's exact
    /// <c>meta.lastUpdated</c>, so a change-feed consumer can record where it got to after every page.
    /// </summary>
    /// <param name="search">Filters, page size and order; all Patients in the default order when null.</param>
    /// <param name="cancellationToken">Stops the enumeration.</param>
    public async IAsyncEnumerable<PatientPage> SearchPagesAsync(PatientSearch? search = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var query = search?.ToQueryString();
        Uri? url = new(BaseAddress, string.IsNullOrEmpty(query) ? "v1/Patient" : "v1/Patient?" + query);
        while (url is not null)
        {
            var page = await GetPageAsync(url, search?.PreferHeader, cancellationToken).ConfigureAwait(false);
            yield return page;
            url = page.NextLink;
        }
    }

    /// <summary>
    /// The change feed, followed until cancelled: the pages of <paramref name="search"/>, then again and again the
    /// pages after the last Patient seen (<c>_lastUpdated=gt</c>), each asked with <c>Prefer: wait</c> so the server
    /// holds the request until there is news. Record each page's <see cref="PatientPage.LastUpdated"/> to resume later.
    /// </summary>
    /// <param name="search">Where to start (filters and page size); must be in ascending order.</param>
    /// <param name="wait">How long the server may hold a request that has nothing new (it may shorten it; 30 s is its usual maximum).</param>
    /// <param name="cancellationToken">Stops following; the enumeration then throws <see cref="OperationCanceledException"/>.</param>
    public async IAsyncEnumerable<PatientPage> FollowPagesAsync(
        PatientSearch search, TimeSpan wait, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(search);
        if (search.Sort == PatientSort.LastUpdatedDescending)
        {
            throw new ArgumentException("Following the feed needs ascending order.", nameof(search));
        }

        var current = new PatientSearch { Count = search.Count, Sort = search.Sort, Wait = wait };
        foreach (var filter in search.LastUpdated)
        {
            current.LastUpdated.Add(filter);
        }

        while (true)
        {
            string? last = null;
            var held = true;
            await foreach (var page in SearchPagesAsync(current, cancellationToken).ConfigureAwait(false))
            {
                last = page.LastUpdated ?? last;
                held &= page.Entries.Count > 0 || page.WaitApplied;
                yield return page;
            }

            if (last is not null)
            {
                current = current.After(last);
            }
            else if (!held)
            {
                // Nothing new and not held (too many waiting requests of this client, or a server without long
                // polling): pause instead of asking again at once.
                await Task.Delay(wait < FollowPause ? wait : FollowPause, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Reads one search page from a URL (the first search URL or a <c>next</c> link).</summary>
    /// <param name="url">Absolute, or relative to the server's base address.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    public Task<PatientPage> GetPageAsync(Uri url, CancellationToken cancellationToken = default) => GetPageAsync(url, null, cancellationToken);

    private static readonly TimeSpan FollowPause = TimeSpan.FromSeconds(5);

    private async Task<PatientPage> GetPageAsync(Uri url, string? prefer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        var absolute = url.IsAbsoluteUri ? url : new Uri(BaseAddress, url);
        using var request = new HttpRequestMessage(HttpMethod.Get, absolute);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(FhirJson.MediaType));
        if (prefer is not null)
        {
            request.Headers.TryAddWithoutValidation("Prefer", prefer);
        }

        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        await ThrowIfFailedAsync(response, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var page = ParsePage(absolute, body);
        page.WaitApplied = response.Headers.TryGetValues("Preference-Applied", out var applied)
            && applied.Any(a => a.Contains("wait=", StringComparison.OrdinalIgnoreCase));
        return page;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
            _ownedTokenHttp?.Dispose();
        }
    }

    internal static PatientPage ParsePage(Uri requestUrl, string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            if (!root.TryGetProperty("resourceType", out var type) || type.GetString() != "Bundle")
            {
                throw new PitApiException(HttpStatusCode.OK, null, null, "The server answered a search with something other than a Bundle.");
            }

            Uri? next = null, self = null;
            if (root.TryGetProperty("link", out var links) && links.ValueKind == JsonValueKind.Array)
            {
                foreach (var link in links.EnumerateArray())
                {
                    var relation = link.TryGetProperty("relation", out var r) ? r.GetString() : null;
                    var target = link.TryGetProperty("url", out var u) ? u.GetString() : null;
                    if (target is null || !Uri.TryCreate(requestUrl, target, out var resolved))
                    {
                        continue;
                    }

                    if (relation == "next")
                    {
                        next = resolved;
                    }
                    else if (relation == "self")
                    {
                        self = resolved;
                    }
                }
            }

            var entries = new List<PatientPageEntry>();
            if (root.TryGetProperty("entry", out var entryArray) && entryArray.ValueKind == JsonValueKind.Array)
            {
                foreach (var entry in entryArray.EnumerateArray())
                {
                    if (!entry.TryGetProperty("resource", out var resource)
                        || !resource.TryGetProperty("resourceType", out var rt) || rt.GetString() != "Patient")
                    {
                        continue; // e.g. an OperationOutcome entry with search.mode = outcome
                    }

                    string? versionId = null, lastUpdated = null;
                    if (resource.TryGetProperty("meta", out var meta))
                    {
                        versionId = meta.TryGetProperty("versionId", out var v) ? v.GetString() : null;
                        lastUpdated = meta.TryGetProperty("lastUpdated", out var lu) ? lu.GetString() : null;
                    }

                    entries.Add(new PatientPageEntry(
                        resource.GetRawText(),
                        resource.TryGetProperty("id", out var id) ? id.GetString() : null,
                        versionId,
                        lastUpdated,
                        entry.TryGetProperty("fullUrl", out var fullUrl) ? fullUrl.GetString() : null));
                }
            }

            return new PatientPage(requestUrl, body, entries, next, self);
        }
        catch (JsonException e)
        {
            throw new PitApiException(HttpStatusCode.OK, null, null, $"The server's search answer is not valid JSON: {e.Message}");
        }
    }

    private static async Task ThrowIfFailedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        throw CreateException(response, body);
    }

    private static PitApiException CreateException(HttpResponseMessage response, string body)
    {
        var outcome = FhirJson.TryParseOutcome(body);
        var challenge = response.Headers.WwwAuthenticate.Count > 0 ? string.Join(", ", response.Headers.WwwAuthenticate) : null;
        var issues = FhirJson.DescribeIssues(outcome);
        var summary = issues.Count > 0 ? issues[0]
            : DpopChallenge.Parameters(response.Headers).GetValueOrDefault("error_description") ?? response.ReasonPhrase ?? "";
        var method = response.RequestMessage?.Method.Method ?? "request";
        var path = response.RequestMessage?.RequestUri?.AbsolutePath ?? "";
        return new PitApiException(response.StatusCode, outcome, challenge,
            $"{method} {path} answered {(int)response.StatusCode} {response.ReasonPhrase}: {summary}".TrimEnd(' ', ':'));
    }

    [GeneratedRegex("""Patient/(?<id>[A-Za-z0-9\-\.]{1,64})""")]
    private static partial Regex PatientReference();

    /// <summary>Lets the PIT chain and the token client share one primary handler without disposing it twice.</summary>
    internal sealed class NonDisposingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override void Dispose(bool disposing)
        {
            // The token client's HttpClient owns the primary handler.
        }
    }
}
