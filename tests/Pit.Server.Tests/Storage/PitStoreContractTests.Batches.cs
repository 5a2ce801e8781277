using Pit.Server.Storage;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Storage;

/// <summary>How much one apply batch takes, and what a batch that cannot finish leaves behind.</summary>
public abstract partial class PitStoreContractTests
{
    [Fact]
    public async Task A_batch_stops_at_its_byte_bound_always_takes_one_and_the_next_batch_applies_the_rest()
    {
        await using var db = await CreateDatabaseAsync();
        var store = await db.OpenStoreAsync();
        var batch = new[] { Submissions.Create(TenantA, "1"), Submissions.Create(TenantA, "2"), Submissions.Create(TenantA, "3"), Submissions.Create(TenantB, "4") };
        await store.Queue.AddSubmissionsAsync(batch, None);

        // A bound below the first submission's size still takes it: the queue never stalls on one large submission.
        Assert.Equal([batch[0].Id], Ids(await store.Queue.ApplyPendingAsync(10, 1, None)));
        // Room for two and all but one byte of the third: the batch ends before the submission that would pass the bound.
        var bound = batch[1].Content.Length + batch[2].Content.Length + batch[3].Content.Length - 1;
        Assert.Equal([batch[1].Id, batch[2].Id], Ids(await store.Queue.ApplyPendingAsync(10, bound, None)));
        Assert.Equal([batch[3].Id], Ids(await store.Queue.ApplyPendingAsync(10, bound, None)));
        Assert.Empty(Ids(await store.Queue.ApplyPendingAsync(10, bound, None)));

        foreach (var s in batch)
        {
            Assert.Equal(SubmissionState.Applied, (await store.Queue.GetSubmissionAsync(s.Id, None))!.State);
        }
    }

    [Fact]
    public async Task An_apply_that_runs_out_of_memory_leaves_every_submission_queued_and_the_next_batch_applies_them()
    {
        await using var db = await CreateDatabaseAsync();
        var time = new FailingTimeProvider(Start);
        var store = await db.OpenStoreAsync(time);
        var batch = new[] { Submissions.Create(TenantA, "1"), Submissions.Create(TenantA, "2") };
        await store.Queue.AddSubmissionsAsync(batch, None);

        time.Failure = () => new OutOfMemoryException();
        await Assert.ThrowsAsync<OutOfMemoryException>(() => store.Queue.ApplyPendingAsync(10, None));
        foreach (var s in batch)
        {
            Assert.Equal(SubmissionState.Queued, (await store.Queue.GetSubmissionAsync(s.Id, None))!.State);
        }

        time.Failure = null;
        Assert.Equal(2, (await store.Queue.ApplyPendingAsync(10, None)).Count);
        foreach (var s in batch)
        {
            var record = (await store.Queue.GetSubmissionAsync(s.Id, None))!;
            Assert.Equal((SubmissionState.Applied, 1), (record.State, record.PatientVersion));
        }
    }

    private static List<Guid> Ids(AppliedBatch batch) => [.. batch.Taken.Select(t => t.Id)];

    /// <summary>A clock that, while <see cref="Failure"/> is set, throws what it makes: a failure inside the apply transaction.</summary>
    private sealed class FailingTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public Func<Exception>? Failure { get; set; }

        public override DateTimeOffset GetUtcNow() => Failure is { } failure ? throw failure() : now;
    }
}
