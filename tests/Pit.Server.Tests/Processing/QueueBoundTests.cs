using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pit.Server.Audit;
using Pit.Server.Processing;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Processing;

/// <summary>The accept path and the audit trail hold a bounded amount of what clients send, and say so at the bound.</summary>
public sealed class QueueBoundTests
{
    [Fact]
    public async Task A_submission_beyond_the_queue_byte_bound_is_answered_503_at_once_and_accepted_again_once_the_queue_drains()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        FailingQueueStore? store = null;
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Processing:MaxQueuedBytes"] = "4000" },
            configure: b => b.Services.DecorateStore<ISubmissionQueueStore>(inner => store = new FailingQueueStore(inner) { StallCommitsUntil = release.Task }));
        using var client = server.CreateClient();
        var queue = server.Services.GetRequiredService<SubmissionQueue>();

        // The first submission is taken into a commit that the test holds open.
        var waiting = new List<(string Fnr, Task<HttpResponseMessage> Response)>();
        var first = TestPatients.NewFnr();
        waiting.Add((first, client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(first)))));
        await store!.CommitStalled.WaitAsync(TimeSpan.FromSeconds(30));

        // More wait behind it until the byte bound is reached; the one that would cross it is refused, not held.
        string? refusedFnr = null;
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 50 && refused is null; i++)
        {
            var fnr = TestPatients.NewFnr();
            var before = queue.QueuedBytes;
            var response = client.PostAsync("v1/Patient", TestPatients.Content(TestPatients.Json(fnr)));
            while (!response.IsCompleted && queue.QueuedBytes == before)
            {
                await Task.Delay(5);
            }

            if (response.IsCompleted)
            {
                (refusedFnr, refused) = (fnr, await response);
            }
            else
            {
                waiting.Add((fnr, response));
            }
        }

        Assert.NotNull(refused);
        Assert.InRange(waiting.Count, 2, 10);
        Assert.InRange(queue.QueuedBytes, 1, 4000);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused!.StatusCode);
        Assert.True(refused.Headers.RetryAfter?.Delta > TimeSpan.Zero, "A refused submission carries Retry-After.");
        var outcome = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!;
        Assert.Contains("Nothing was accepted", PitApi.AssertOutcome(outcome, "transient"), StringComparison.Ordinal);
        Assert.All(waiting, w => Assert.False(w.Response.IsCompleted, "Accepted submissions wait for their commit."));

        release.SetResult();
        var statusUrls = new List<Uri>();
        foreach (var (_, response) in waiting)
        {
            using var answer = await response;
            Assert.Equal(HttpStatusCode.Accepted, answer.StatusCode);
            statusUrls.Add(answer.Content.Headers.ContentLocation!);
        }

        Assert.Equal(0, queue.QueuedBytes);
        var again = TestPatients.NewFnr();
        statusUrls.Add(await client.SubmitAsync(TestPatients.Json(again)));
        foreach (var url in statusUrls)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.WaitProcessedAsync(url)).Status);
        }

        var stored = (await client.GetJsonAsync("v1/Patient?_count=50", HttpStatusCode.OK)).Resources()
            .Select(p => (string)p["identifier"]![0]!["value"]!).ToHashSet();
        Assert.Equal(waiting.Select(w => w.Fnr).Append(again).ToHashSet(), stored);
        Assert.DoesNotContain(refusedFnr!, stored);
    }

    [Fact]
    public async Task Audit_entries_beyond_the_buffer_bound_are_dropped_counted_and_logged_and_the_rest_are_written()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var logs = new LogLines();
        StallingAuditStore? store = null;
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Pit:Processing:MaxQueuedAuditEntries"] = "10" },
            configure: b =>
            {
                b.Services.DecorateStore<IAuditStore>(inner => store = new StallingAuditStore(inner) { StallUntil = release.Task });
                b.Logging.AddProvider(logs);
            });
        var audit = server.Services.GetRequiredService<AuditTrail>();
        var marker = Guid.NewGuid().ToString("N");
        AuditEntry Entry(int i) => new(i, "test", marker, "974762501", null, null, null, 200, $"entry {i}");

        // One entry is taken into a write the test holds open; ten more fill the buffer; five beyond it are dropped.
        audit.Record(Entry(0));
        await store!.Stalled.WaitAsync(TimeSpan.FromSeconds(30));
        for (var i = 1; i <= 15; i++)
        {
            audit.Record(Entry(i));
        }

        Assert.Equal(5, audit.Dropped);
        Assert.Single(logs.Lines, l => l.Contains("audit buffer is full (10 entries)", StringComparison.Ordinal));

        release.SetResult();
        IReadOnlyList<AuditEntry> written = [];
        for (var i = 0; i < 200 && written.Count < 11; i++)
        {
            await Task.Delay(25);
            written = [.. (await store.ReadAuditAsync(null, 100, CancellationToken.None)).Where(e => e.ClientId == marker)];
        }

        Assert.Equal(Enumerable.Range(0, 11).Select(i => (long)i), written.Select(e => e.At).Order());
        Assert.Contains(logs.Lines, l => l.Contains("5 audit entries were dropped", StringComparison.Ordinal));
    }

    /// <summary>Formatted log messages of the server, for tests of what it reports.</summary>
    private sealed class LogLines : ILoggerProvider, ILogger
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => [.. _lines];

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                _lines.Enqueue(formatter(state, exception));
            }
        }

        public void Dispose()
        {
        }
    }
}
