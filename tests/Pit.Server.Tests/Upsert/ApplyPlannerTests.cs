using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Pit.Server.Tests.Storage;
using Pit.Server.Upsert;

namespace Pit.Server.Tests.Upsert;

/// <summary>The upsert rules on their own: no database, a fake clock and predictable new ids.</summary>
public sealed class ApplyPlannerTests
{
    private const string Tenant = "999999999";
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    private static readonly long StartMicros = FeedTime.FromDateTimeOffset(Start);

    private readonly FakeTimeProvider _time = new(Start);
    private int _ids;

    [Fact]
    public void A_submission_matching_no_patient_writes_version_1_of_a_new_patient_at_the_current_time()
    {
        var s = Pending(1, "1");

        var plan = Plan([s], [], clock: 0);

        Assert.Equal(new SubmissionOutcome(1, SubmissionState.Applied, StartMicros, "new-1", 1, null), Assert.Single(plan.Outcomes));
        var write = Assert.Single(plan.Writes);
        Assert.Equal(("new-1", Tenant, 1, StartMicros, 1L), (write.Id, write.Tenant, write.Version, write.LastUpdated, write.LastSequence));
        Assert.Equal(s.Keys, write.Keys);
        Assert.Equal("1", Meta(write.Json).GetProperty("versionId").GetString());
        Assert.Empty(plan.Touches);
        Assert.Equal(StartMicros, plan.Clock);
    }

    [Fact]
    public void Changed_content_writes_the_next_version_of_the_matched_patient_with_the_new_identifiers()
    {
        var dNumber = new PatientKey(Submissions.DNumber, "41010112345");
        var existing = Existing("p", version: 3, content: "female", lastSequence: 5, new PatientKey(Submissions.Fnr, "1"), dNumber);
        var s = Pending(9, "2", "male", dNumber);

        var plan = Plan([s], [existing], clock: 0);

        Assert.Equal((SubmissionState.Applied, "p", 4), (plan.Outcomes[0].State, plan.Outcomes[0].PatientId, plan.Outcomes[0].Version));
        var write = Assert.Single(plan.Writes);
        Assert.Equal([new PatientKey(Submissions.Fnr, "2"), dNumber], write.Keys);
        Assert.Equal(9, write.LastSequence);
    }

    [Fact]
    public void Identical_content_is_unchanged_and_only_raises_the_patients_last_sequence()
    {
        var existing = Existing("p", version: 2, content: "female", lastSequence: 5, new PatientKey(Submissions.Fnr, "1"));

        var plan = Plan([Pending(7, "1", "female")], [existing], clock: 100);

        Assert.Equal(new SubmissionOutcome(7, SubmissionState.Unchanged, StartMicros, "p", 2, null), Assert.Single(plan.Outcomes));
        Assert.Empty(plan.Writes);
        Assert.Equal(new SequenceTouch("p", 7), Assert.Single(plan.Touches));
        Assert.Equal(100, plan.Clock);
    }

    [Fact]
    public void A_submission_accepted_before_the_last_applied_one_is_superseded_and_writes_nothing()
    {
        var existing = Existing("p", version: 2, content: "female", lastSequence: 8, new PatientKey(Submissions.Fnr, "1"));

        var plan = Plan([Pending(7, "1", "male")], [existing], clock: 100);

        Assert.Equal(new SubmissionOutcome(7, SubmissionState.Superseded, StartMicros, "p", 2, null), Assert.Single(plan.Outcomes));
        Assert.Empty(plan.Writes);
        Assert.Empty(plan.Touches);
    }

    [Fact]
    public void Identifiers_of_two_patients_fail_with_the_reason_and_write_nothing()
    {
        var p = Existing("p", 1, "female", 1, new PatientKey(Submissions.Fnr, "1"));
        var q = Existing("q", 1, "female", 2, new PatientKey(Submissions.Fnr, "2"));

        var plan = Plan([Pending(3, "1", extra: new PatientKey(Submissions.Fnr, "2"))], [p, q], clock: 0);

        Assert.Equal(new SubmissionOutcome(3, SubmissionState.Failed, StartMicros, null, null, ApplyPlanner.AmbiguousReason), Assert.Single(plan.Outcomes));
        Assert.Empty(plan.Writes);
    }

    [Fact]
    public void Content_that_cannot_be_composed_fails_with_the_exception_type_only_and_later_submissions_still_apply()
    {
        var broken = new PendingSubmission(1, Tenant, Encoding.UTF8.GetBytes("""{"gender":"secret-detail","resourceType":"Patient"}"""), [1], [new(Submissions.Fnr, "1")]);

        var plan = Plan([broken, Pending(2, "1")], [], clock: 0);

        var failed = plan.Outcomes[0];
        Assert.Equal((SubmissionState.Failed, "Processing failed: ArgumentException."), (failed.State, failed.Reason));
        Assert.IsType<ArgumentException>(failed.Error);
        Assert.Equal((SubmissionState.Applied, 1), (plan.Outcomes[1].State, plan.Outcomes[1].Version));
        Assert.Equal(plan.Outcomes[1].PatientId, Assert.Single(plan.Writes).Id);
    }

    [Theory]
    [InlineData(typeof(OutOfMemoryException))]
    [InlineData(typeof(InsufficientMemoryException))]
    [InlineData(typeof(OperationCanceledException))]
    public void A_failure_that_says_nothing_about_the_submission_fails_the_whole_plan_instead_of_marking_it_failed(Type failure)
    {
        // Building the second submission's Patient fails as a process short of memory does: no outcome may say Failed,
        // the engine's transaction rolls back and both submissions stay queued for a later batch.
        var ids = 0;
        string NewId() => ++ids == 2 ? throw (Exception)Activator.CreateInstance(failure)! : $"new-{ids}";

        var thrown = Assert.ThrowsAny<Exception>(() => ApplyPlanner.Plan([Pending(1, "1"), Pending(2, "2")], [], 0, _time, _ => NewId()));

        Assert.IsType(failure, thrown);
    }

    [Fact]
    public void A_new_patients_id_is_derived_from_the_submission_that_creates_it_so_a_redo_writes_the_same_id()
    {
        var submissionId = Guid.CreateVersion7();
        var s = Pending(1, "1") with { Taken = new TakenSubmission(submissionId, StartMicros, Tenant) };

        var first = ApplyPlanner.Plan([s], [], 0, _time);
        var redo = ApplyPlanner.Plan([s], [], 0, _time);

        var id = Assert.Single(first.Writes).Id;
        Assert.Equal(id, Assert.Single(redo.Writes).Id);
        Assert.Equal(id, first.Outcomes[0].PatientId);
        Assert.Equal(ApplyPlanner.PatientIdFor(submissionId), id);
        Assert.Matches("^[0-9a-f]{32}$", id);
        Assert.NotEqual(submissionId.ToString("N"), id);
        Assert.NotEqual(id, ApplyPlanner.PatientIdFor(Guid.CreateVersion7()));
    }

    [Fact]
    public void LastUpdated_is_one_above_the_clock_when_the_wall_clock_is_not_ahead_of_it()
    {
        var plan = Plan([Pending(1, "1"), Pending(2, "2"), Pending(3, "3")], [], clock: StartMicros + 10);

        Assert.Equal([StartMicros + 11, StartMicros + 12, StartMicros + 13], plan.Writes.Select(w => w.LastUpdated).Order());
        Assert.Equal(StartMicros + 13, plan.Clock);
    }

    [Fact]
    public void Later_submissions_of_a_batch_see_earlier_ones_and_only_the_final_version_is_written()
    {
        var batch = new[] { Pending(1, "1", "female"), Pending(2, "1", "male"), Pending(3, "1", "male"), Pending(4, "1", "other") };

        var plan = Plan(batch, [], clock: 0);

        Assert.Equal(
            [(SubmissionState.Applied, 1), (SubmissionState.Applied, 2), (SubmissionState.Unchanged, 2), (SubmissionState.Applied, 3)],
            plan.Outcomes.Select(o => (o.State, o.Version ?? 0)));
        Assert.All(plan.Outcomes, o => Assert.Equal("new-1", o.PatientId));
        var write = Assert.Single(plan.Writes);
        Assert.Equal((3, 4L), (write.Version, write.LastSequence));
        Assert.Equal("other", JsonDocument.Parse(write.Json).RootElement.GetProperty("gender").GetString());
        Assert.Empty(plan.Touches);
    }

    [Fact]
    public void An_identifier_a_patient_gave_up_in_the_batch_makes_a_new_patient()
    {
        var existing = Existing("p", 1, "female", 1, new PatientKey(Submissions.Fnr, "1"));

        var plan = Plan([Pending(2, "2", "male", new PatientKey(Submissions.Fnr, "1")), Pending(3, "2", "other"), Pending(4, "1")], [existing], clock: 0);

        Assert.Equal(["p", "p", "new-1"], plan.Outcomes.Select(o => o.PatientId));
        Assert.Equal([new PatientKey(Submissions.Fnr, "2")], plan.Writes.Single(w => w.Id == "p").Keys);
    }

    [Fact]
    public void Matching_is_per_tenant()
    {
        var existing = Existing("p", 1, "female", 1, new PatientKey(Submissions.Fnr, "1")) with { Tenant = "888888888" };

        var plan = Plan([Pending(2, "1")], [existing], clock: 0);

        Assert.Equal(("new-1", 1), (plan.Outcomes[0].PatientId, plan.Outcomes[0].Version));
    }

    private ApplyPlan Plan(IReadOnlyList<PendingSubmission> batch, IReadOnlyList<ExistingPatient> existing, long clock) =>
        ApplyPlanner.Plan(batch, existing, clock, _time, _ => $"new-{++_ids}");

    private static PendingSubmission Pending(long sequence, string fnr, string gender = "female", params PatientKey[] extra)
    {
        var s = Submissions.Create(Tenant, fnr, gender, extraKeys: extra);
        return new PendingSubmission(sequence, Tenant, s.Content, s.ContentHash, s.Keys);
    }

    private static ExistingPatient Existing(string id, int version, string content, long lastSequence, params PatientKey[] keys) =>
        new(id, Tenant, version, Pending(0, keys[0].Value, content).ContentHash, lastSequence, keys);

    private static JsonElement Meta(byte[] json) => JsonDocument.Parse(json).RootElement.GetProperty("meta");
}
