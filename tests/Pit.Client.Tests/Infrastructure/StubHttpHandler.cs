using System.Net;

namespace Pit.Client.Tests.Infrastructure;

/// <summary>What a stubbed endpoint saw of one request (captured before the request is disposed).</summary>
internal sealed record SeenRequest(HttpMethod Method, Uri Url, string? Authorization, string? Dpop, string? Body);

/// <summary>What a handler was sent, in order (thread-safe).</summary>
internal sealed class RequestLog
{
    private readonly List<SeenRequest> _seen = [];
    private readonly Lock _gate = new();

    public IReadOnlyList<SeenRequest> Seen
    {
        get
        {
            lock (_gate)
            {
                return [.. _seen];
            }
        }
    }

    /// <summary>Captures <paramref name="request"/> (before it is disposed); returns it with its position.</summary>
    public async Task<(SeenRequest Seen, int Index)> RecordAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var seen = new SeenRequest(
            request.Method,
            request.RequestUri!,
            request.Headers.Authorization?.ToString(),
            request.Headers.TryGetValues("DPoP", out var dpop) ? dpop.Single() : null,
            request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken));
        lock (_gate)
        {
            _seen.Add(seen);
            return (seen, _seen.Count - 1);
        }
    }
}

/// <summary>Answers requests with a function and records what it was sent.</summary>
internal sealed class StubHttpHandler(Func<SeenRequest, int, HttpResponseMessage> respond) : HttpMessageHandler
{
    private readonly RequestLog _log = new();

    public IReadOnlyList<SeenRequest> Seen => _log.Seen;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var (seen, index) = await _log.RecordAsync(request, cancellationToken);
        var response = respond(seen, index);
        response.RequestMessage = request;
        return response;
    }

    public static HttpResponseMessage Json(HttpStatusCode status, string json, string mediaType = "application/json") =>
        new(status) { Content = new StringContent(json, System.Text.Encoding.UTF8, mediaType) };
}

/// <summary>A clock a test moves by hand.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
