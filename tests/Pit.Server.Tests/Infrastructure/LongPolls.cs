using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Feed;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>A long-polling search's answer: status, body and the Preference-Applied header.</summary>
public sealed record LongPollAnswer(HttpStatusCode Status, JsonNode Body, string? PreferenceApplied);

/// <summary>Long-polling searches (<c>Prefer: wait=N</c>) for tests.</summary>
public static class LongPolls
{
    /// <summary>GETs <paramref name="url"/> with <c>Prefer: <paramref name="prefer"/></c>.</summary>
    public static async Task<LongPollAnswer> GetPreferringAsync(this HttpClient client, string url, string prefer, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.TryAddWithoutValidation("Prefer", prefer);
        using var response = await client.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var applied = response.Headers.TryGetValues("Preference-Applied", out var values) ? string.Join(",", values) : null;
        return new LongPollAnswer(response.StatusCode, JsonNode.Parse(text)!, applied);
    }

    /// <summary>Waits until <paramref name="count"/> searches are held by <paramref name="server"/> (fails after 10 s).</summary>
    public static async Task WaitersAsync(this TestServer server, int count)
    {
        var limits = server.Services.GetRequiredService<FeedWaiterLimits>();
        for (var i = 0; i < 1000 && limits.Waiting != count; i++)
        {
            await Task.Delay(10);
        }

        Assert.Equal(count, limits.Waiting);
    }

    /// <summary>
    /// Advances <paramref name="time"/> a second at a time until <paramref name="answer"/> completes (at most
    /// <paramref name="maxSeconds"/>); returns the seconds it took. Steps, not one jump, so a timer the server sets
    /// just after a step is still reached.
    /// </summary>
    public static async Task<int> AdvanceUntilAnsweredAsync(this FakeTimeProvider time, Task answer, int maxSeconds = 60)
    {
        for (var seconds = 0; seconds <= maxSeconds; seconds++)
        {
            if (await Task.WhenAny(answer, Task.Delay(50)) == answer)
            {
                return seconds;
            }

            time.Advance(TimeSpan.FromSeconds(1));
        }

        throw new TimeoutException($"Not answered after {maxSeconds} s of fake time.");
    }

    /// <summary>A <c>_lastUpdated=gt</c> search after <paramref name="lastUpdated"/>.</summary>
    public static string After(string lastUpdated, int count = 20) =>
        $"v1/Patient?_count={count}&_lastUpdated=gt{Uri.EscapeDataString(lastUpdated)}";
}
