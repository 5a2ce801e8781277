using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;

namespace Pit.Client.Tests.Infrastructure;

/// <summary>
/// An in-memory stand-in for PIT's HTTP surface (POST, status, search with _lastUpdated/_count/cursor, read), behind
/// the HelseID look-alike. It checks no proofs: the DPoP tests do that, and the end-to-end tests use the real server.
/// </summary>
internal sealed class FakePitServer
{
    public const string BaseUrl = "https://pit.example/";

    private readonly Lock _gate = new();
    private readonly Dictionary<string, (string Id, int Version, long Ticks, string Json, string Content)> _byIdentifier = new(StringComparer.Ordinal);
    private readonly List<string> _submissions = [];
    private long _clock = new DateTimeOffset(2026, 11, 25, 8, 0, 0, TimeSpan.Zero).UtcTicks;

    public FakePitServer()
    {
        var helseId = HelseIdTokenClientTests.HelseIdStub(requireNonce: false);
        Handler = new StubHttpHandler((request, index) => request.Url.Host == "pit.example" ? Answer(request) : Forward(helseId, request));
    }

    public StubHttpHandler Handler { get; }

    /// <summary>When set, every PIT call is refused with this status (401 or 403) and an OperationOutcome.</summary>
    public HttpStatusCode? RefuseWith { get; set; }

    private HttpResponseMessage Answer(SeenRequest request)
    {
        if (RefuseWith is { } refusal)
        {
            var refused = Outcome(refusal, refusal == HttpStatusCode.Unauthorized ? "login" : "forbidden",
                refusal == HttpStatusCode.Unauthorized ? "The access token is not valid." : "Scope nhn:pit/api.write is required.");
            refused.Headers.TryAddWithoutValidation("WWW-Authenticate",
                refusal == HttpStatusCode.Unauthorized ? "DPoP error=\"invalid_token\", error_description=\"token expired\"" : "DPoP error=\"insufficient_scope\", scope=\"nhn:pit/api.write\"");
            return refused;
        }

        var path = request.Url.AbsolutePath;
        lock (_gate)
        {
            if (request.Method == HttpMethod.Post && path == "/v1/Patient")
            {
                return Submit(request.Body ?? "");
            }

            if (request.Method == HttpMethod.Get && path.StartsWith("/v1/_status/", StringComparison.Ordinal))
            {
                var id = _submissions[int.Parse(path["/v1/_status/".Length..], CultureInfo.InvariantCulture)];
                return Fhir(HttpStatusCode.OK, $$"""{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"Applied to Patient/{{id}}"}]}""");
            }

            if (request.Method == HttpMethod.Get && path == "/v1/Patient")
            {
                return Search(request.Url);
            }

            if (request.Method == HttpMethod.Get && path.StartsWith("/v1/Patient/", StringComparison.Ordinal))
            {
                var id = path["/v1/Patient/".Length..];
                var row = _byIdentifier.Values.FirstOrDefault(r => r.Id == id);
                return row.Id is null ? Outcome(HttpStatusCode.NotFound, "not-found", $"Patient/{id} does not exist.") : Fhir(HttpStatusCode.OK, row.Json);
            }
        }

        return Outcome(HttpStatusCode.NotFound, "not-found", "No such resource.");
    }

    private HttpResponseMessage Submit(string body)
    {
        JsonObject patient;
        try
        {
            patient = JsonNode.Parse(body) as JsonObject ?? throw new FormatException();
        }
        catch (Exception e) when (e is FormatException or System.Text.Json.JsonException)
        {
            return Outcome(HttpStatusCode.BadRequest, "structure", "The body is not JSON.");
        }

        var fnr = patient["identifier"]?[0]?["value"]?.GetValue<string>();
        if (patient["resourceType"]?.GetValue<string>() != "Patient" || fnr is null)
        {
            return Outcome(HttpStatusCode.BadRequest, "required", "A Patient needs a Norwegian person identifier.", "Patient.identifier");
        }

        patient.Remove("id");
        patient.Remove("meta");
        var content = patient.ToJsonString();
        _byIdentifier.TryGetValue(fnr, out var current);
        if (current.Id is null || current.Content != content)
        {
            var id = current.Id ?? $"p{_byIdentifier.Count + 1}";
            var version = current.Version + 1;
            _clock += 10; // one microsecond apart: strictly increasing
            var stored = new JsonObject
            {
                ["resourceType"] = "Patient",
                ["id"] = id,
                ["meta"] = new JsonObject { ["versionId"] = version.ToString(CultureInfo.InvariantCulture), ["lastUpdated"] = Format(_clock) },
            };
            foreach (var (name, value) in patient)
            {
                if (name != "resourceType")
                {
                    stored[name] = value?.DeepClone();
                }
            }

            _byIdentifier[fnr] = (id, version, _clock, stored.ToJsonString(), content);
        }

        _submissions.Add(_byIdentifier[fnr].Id);
        var accepted = new HttpResponseMessage(HttpStatusCode.Accepted) { Content = new StringContent("") };
        accepted.Content.Headers.ContentLocation = new Uri($"{BaseUrl}v1/_status/{_submissions.Count - 1}");
        return accepted;
    }

    private HttpResponseMessage Search(Uri url)
    {
        var query = url.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2)).ToLookup(p => p[0], p => Uri.UnescapeDataString(p[1]));
        var count = query["_count"].Any() ? int.Parse(query["_count"].First(), CultureInfo.InvariantCulture) : 20;
        long after = long.MinValue;
        if (query["cursor"].Any())
        {
            if (query["_lastUpdated"].Any())
            {
                return Outcome(HttpStatusCode.BadRequest, "invalid", "cursor cannot be combined with _lastUpdated.");
            }

            after = long.Parse(query["cursor"].First(), CultureInfo.InvariantCulture);
        }

        foreach (var filter in query["_lastUpdated"])
        {
            if (!filter.StartsWith("gt", StringComparison.Ordinal) && !filter.StartsWith("ge", StringComparison.Ordinal))
            {
                return Outcome(HttpStatusCode.BadRequest, "invalid", "Only gt and ge are supported by this fake.");
            }

            var ticks = DateTimeOffset.Parse(filter[2..], CultureInfo.InvariantCulture).UtcTicks;
            after = filter.StartsWith("gt", StringComparison.Ordinal) ? ticks : ticks - 1;
        }

        var rows = _byIdentifier.Values.Where(r => r.Ticks > after).OrderBy(r => r.Ticks).ToList();
        var page = rows.Take(count).ToList();
        var links = new JsonArray { new JsonObject { ["relation"] = "self", ["url"] = url.AbsoluteUri } };
        if (rows.Count > count)
        {
            links.Add(new JsonObject { ["relation"] = "next", ["url"] = $"{BaseUrl}v1/Patient?cursor={page[^1].Ticks}&_count={count}" });
        }

        var entries = new JsonArray();
        foreach (var row in page)
        {
            entries.Add(new JsonObject
            {
                ["fullUrl"] = $"{BaseUrl}v1/Patient/{row.Id}",
                ["resource"] = JsonNode.Parse(row.Json),
                ["search"] = new JsonObject { ["mode"] = "match" },
            });
        }

        var bundle = new JsonObject { ["resourceType"] = "Bundle", ["type"] = "searchset", ["link"] = links, ["entry"] = entries };
        return Fhir(HttpStatusCode.OK, bundle.ToJsonString());
    }

    private static string Format(long ticks) => new DateTimeOffset(ticks, TimeSpan.Zero).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static HttpResponseMessage Fhir(HttpStatusCode status, string json) => StubHttpHandler.Json(status, json, "application/fhir+json");

    private static HttpResponseMessage Outcome(HttpStatusCode status, string code, string text, string? expression = null) =>
        Fhir(status, new JsonObject
        {
            ["resourceType"] = "OperationOutcome",
            ["issue"] = new JsonArray
            {
                new JsonObject
                {
                    ["severity"] = "error",
                    ["code"] = code,
                    ["diagnostics"] = text,
                    ["expression"] = expression is null ? null : new JsonArray { expression },
                },
            },
        }.ToJsonString());

    internal static HttpResponseMessage Forward(StubHttpHandler target, SeenRequest request)
    {
        using var invoker = new HttpMessageInvoker(target, disposeHandler: false);
        using var message = new HttpRequestMessage(request.Method, request.Url);
        if (request.Dpop is not null)
        {
            message.Headers.Add("DPoP", request.Dpop);
        }

        if (request.Body is not null)
        {
            message.Content = new StringContent(request.Body);
        }

        return invoker.SendAsync(message, CancellationToken.None).GetAwaiter().GetResult();
    }
}
