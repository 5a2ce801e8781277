namespace Pit.Client.Tests.Infrastructure;

/// <summary>
/// Real sockets underneath, recording what was sent. <c>answer</c> may answer a request itself instead (return
/// non-null), for the few answers the real server never gives.
/// </summary>
internal sealed class RecordingHandler(Func<SeenRequest, int, HttpResponseMessage?>? answer = null) : DelegatingHandler(new SocketsHttpHandler())
{
    private readonly RequestLog _log = new();

    public IReadOnlyList<SeenRequest> Seen => _log.Seen;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var (seen, index) = await _log.RecordAsync(request, cancellationToken);
        if (answer?.Invoke(seen, index) is { } response)
        {
            response.RequestMessage = request;
            return response;
        }

        return await base.SendAsync(request, cancellationToken);
    }
}
