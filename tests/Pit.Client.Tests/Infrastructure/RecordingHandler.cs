namespace Pit.Client.Tests.Infrastructure;

/// <summary>
/// Real sockets underneath, recording what was sent. <c>answer</c> may answer a request itself instead (return
/// non-null), for the few answers the real server never gives.
/// </summary>
internal sealed class RecordingHandler(Func<SeenRequest, int, HttpResponseMessage?>? answer = null) : DelegatingHandler(new SocketsHttpHandler())
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

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var seen = new SeenRequest(
            request.Method,
            request.RequestUri!,
            request.Headers.Authorization?.ToString(),
            request.Headers.TryGetValues("DPoP", out var dpop) ? dpop.Single() : null,
            request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken));
        int index;
        lock (_gate)
        {
            _seen.Add(seen);
            index = _seen.Count - 1;
        }

        if (answer?.Invoke(seen, index) is { } response)
        {
            response.RequestMessage = request;
            return response;
        }

        return await base.SendAsync(request, cancellationToken);
    }
}
