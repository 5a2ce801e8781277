using System.Collections.Concurrent;
using System.Globalization;
using Hl7.Fhir.Model;
using Hl7.Fhir.Rest;
using Pit.Server.Tests.Infrastructure;
using Xunit.Abstractions;
using Task = System.Threading.Tasks.Task;

namespace Pit.Client.Tests;

/// <summary>
/// Change-feed readers that keep <c>meta.lastUpdated</c> in their own types, losing digits, and resume with
/// <c>_lastUpdated=gt&lt;their copy&gt;</c> while clients of three organisations submit at once, on each storage engine
/// (<see cref="SqliteFeedResumeTests"/>, <see cref="PostgresFeedResumeTests"/>). Each reader stops after a few new
/// versions and resumes from its copy (as a job that syncs a little per run does), so most resumptions land inside a
/// burst whose stamps are microseconds apart. Every version must be seen; repeats are allowed and counted.
/// </summary>
public abstract class FeedResumeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string ThirdOrganisation = "987654325";
    private const int SubmissionsPerWriter = 25;

    private TestServer _server = null!;

    public async Task InitializeAsync()
    {
        var settings = await SettingsAsync();
        // Readers poll every few milliseconds; throttling has tests of its own.
        settings["Pit:RateLimiting:Enabled"] = "false";
        _server = await TestServer.StartAsync(settings);
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private protected abstract Task<Dictionary<string, string?>> SettingsAsync();

    [Fact]
    public async Task Resuming_through_PitClient_from_a_copy_cut_to_0_3_or_6_digits_misses_no_version_while_three_organisations_submit_at_once()
    {
        var clients = new List<PitClient>();
        ResumingReader Reader(string name, Func<string, string> cut)
        {
            var pit = new PitClient(_server.CreateClient());
            clients.Add(pit);
            return new ResumingReader(name, copy => PitClientFeed(pit, copy, cut));
        }

        ResumingReader[] readers =
        [
            Reader("6 digits (verbatim)", exact => exact),
            Reader("3 digits truncated", exact => Text(Instant(exact), 3, round: false)),
            Reader("3 digits rounded to nearest", exact => Text(Instant(exact), 3, round: true)),
            Reader("0 digits truncated", exact => Text(Instant(exact), 0, round: false)),
        ];
        try
        {
            await RunAsync(readers);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        Assert.Equal(0, readers[0].Repeats);
        Assert.Equal(0, readers[0].LossyResumes);
        Assert.All(readers[1..], r => Assert.True(r.LossyResumes > 0, $"{r.Name}: no resumption lost digits."));
        Assert.True(readers[1..].Sum(r => r.InsideTheLastUnit) > 0, "No resumption met a new version inside its copy's last unit: the run did not test the rule.");
    }

    [Fact]
    public async Task Resuming_through_the_Firely_SDK_from_meta_lastUpdated_kept_as_a_DateTimeOffset_misses_no_version_while_three_organisations_submit_at_once()
    {
        var clients = new List<IDisposable>();
        ResumingReader Reader(string name, Func<DateTimeOffset, DateTimeOffset> cut)
        {
            var http = _server.CreateClient();
            var fhir = new FhirClient(new Uri(_server.BaseAddress, "v1/"), http, new FhirClientSettings { PreferredFormat = ResourceFormat.Json });
            clients.Add(fhir);
            clients.Add(http);
            return new ResumingReader(name, copy => FirelyFeed(fhir, copy, cut));
        }

        // The SDK's own rendering: new FhirDateTime(dto).ToString() drops trailing zeros (…53.004000Z → …53.004+00:00).
        ResumingReader[] readers =
        [
            Reader("DateTimeOffset as parsed (6 digits)", stamp => stamp),
            Reader("DateTimeOffset truncated to 3 digits", stamp => Cut(stamp, 3, round: false)),
            Reader("DateTimeOffset rounded to 3 digits", stamp => Cut(stamp, 3, round: true)),
            Reader("DateTimeOffset truncated to 0 digits", stamp => Cut(stamp, 0, round: false)),
        ];
        try
        {
            await RunAsync(readers);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }

        Assert.All(readers[1..], r => Assert.True(r.LossyResumes > 0, $"{r.Name}: no resumption lost digits."));
        Assert.True(readers[1..].Sum(r => r.InsideTheLastUnit) > 0, "No resumption met a new version inside its copy's last unit: the run did not test the rule.");
    }

    /// <summary>
    /// Two clients of each of three organisations submit at once (some Patients several times, so there are updates);
    /// the readers of the first organisation resume throughout. Then every reader must have seen every Patient's current
    /// version, each Patient's versions in order, and nothing of the other organisations.
    /// </summary>
    private async Task RunAsync(ResumingReader[] readers)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var writersDone = new CancellationTokenSource();
        var reading = readers.Select(r => Task.Run(() => r.RunAsync(writersDone.Token, timeout.Token))).ToArray();

        string[] organisations = [TestServer.DefaultOrganisation, TestServer.OtherOrganisation, ThirdOrganisation];
        var accepted = new ConcurrentBag<(PitClient Client, Uri Status)>();
        var writers = organisations.SelectMany((organisation, o) =>
        {
            var people = Enumerable.Range(0, 30).Select(_ => TestPatients.NewFnr()).ToArray();
            return Enumerable.Range(0, 2).Select(w => (Client: new PitClient(_server.CreateClient(organisation)), People: people, Seed: (o * 2) + w));
        }).ToList();
        try
        {
            // Each client keeps a few submissions in flight, so the processor finds a queue and stamps many versions of one
            // organisation microseconds apart: the bursts in which a copy that lost digits points inside a run of stamps.
            await Task.WhenAll(writers.Select(writer => Parallel.ForEachAsync(
                Enumerable.Range(0, SubmissionsPerWriter), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = timeout.Token }, async (i, cancel) =>
                {
                    var fnr = writer.People[(i * 7 + writer.Seed) % writer.People.Length];
                    accepted.Add((writer.Client, await writer.Client.SubmitPatientJsonAsync(TestPatients.Json(fnr, family: $"F{writer.Seed}-{i}"), cancel)));
                })));
            foreach (var (client, status) in accepted)
            {
                Assert.Equal(SubmissionState.Completed, (await client.WaitForSubmissionAsync(status, TimeSpan.FromMilliseconds(20), timeout.Token)).State);
            }

            await writersDone.CancelAsync();
            await Task.WhenAll(reading);

            var current = new Dictionary<string, int>();
            await foreach (var page in writers[0].Client.SearchPagesAsync(new PatientSearch { Count = 50 }, timeout.Token))
            {
                foreach (var entry in page.Entries)
                {
                    current[entry.Id!] = int.Parse(entry.VersionId!, CultureInfo.InvariantCulture);
                }
            }

            Assert.True(current.Values.Sum() > current.Count, "The run should have produced updates, not only creations.");
            foreach (var reader in readers)
            {
                output.WriteLine($"{reader.Name}: {reader.Seen.Count} versions, {reader.Repeats} repeats, {reader.Resumes} resumptions of which {reader.LossyResumes} from a copy with fewer than six digits, {reader.InsideTheLastUnit} finding a new version inside the copy's last unit.");
                var missed = current.Where(c => !reader.Seen.Contains((c.Key, c.Value))).Select(c => $"{c.Key}/{c.Value}").ToList();
                Assert.True(missed.Count == 0, $"{reader.Name} missed {missed.Count} current version(s): {string.Join(", ", missed)}.");
                Assert.All(reader.Seen, s => Assert.True(current.ContainsKey(s.Id), $"{reader.Name} saw {s.Id}, not its organisation's."));
                foreach (var versions in reader.Order.GroupBy(s => s.Id).Select(g => g.Select(s => s.Version).ToList()))
                {
                    Assert.Equal(versions.Order(), versions);
                }
            }
        }
        finally
        {
            writers.ForEach(w => w.Client.Dispose());
        }
    }

    private static async IAsyncEnumerable<FeedEntry> PitClientFeed(PitClient pit, string? copy, Func<string, string> cut)
    {
        var search = new PatientSearch { Count = 10 };
        if (copy is not null)
        {
            search.LastUpdated.Add("gt" + copy);
        }

        await foreach (var page in pit.SearchPagesAsync(search))
        {
            foreach (var entry in page.Entries)
            {
                yield return new FeedEntry(entry.Id!, int.Parse(entry.VersionId!, CultureInfo.InvariantCulture), Instant(entry.LastUpdated!), cut(entry.LastUpdated!));
            }
        }
    }

    private static async IAsyncEnumerable<FeedEntry> FirelyFeed(FhirClient fhir, string? copy, Func<DateTimeOffset, DateTimeOffset> cut)
    {
        var query = new SearchParams().LimitTo(10);
        if (copy is not null)
        {
            query.Add("_lastUpdated", "gt" + copy);
        }

        var page = await fhir.SearchAsync<Patient>(query);
        while (page is not null)
        {
            foreach (var patient in page.Entry.Select(e => e.Resource).OfType<Patient>())
            {
                var stamp = patient.Meta!.LastUpdated!.Value;
                yield return new FeedEntry(patient.Id!, int.Parse(patient.Meta.VersionId!, CultureInfo.InvariantCulture), stamp, new FhirDateTime(cut(stamp)).ToString()!);
            }

            page = await fhir.ContinueAsync(page);
        }
    }

    private static DateTimeOffset Instant(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture);

    /// <summary><paramref name="time"/> cut to <paramref name="digits"/> fractional digits, truncated or rounded half up.</summary>
    private static DateTimeOffset Cut(DateTimeOffset time, int digits, bool round)
    {
        var unit = (long)Math.Pow(10, 7 - digits);
        var rest = time.UtcTicks % unit;
        var ticks = time.UtcTicks - rest + (round && rest * 2 >= unit ? unit : 0);
        return new DateTimeOffset(ticks, TimeSpan.Zero).ToOffset(time.Offset);
    }

    /// <summary>The cut instant written in UTC with exactly <paramref name="digits"/> fractional digits.</summary>
    private static string Text(DateTimeOffset time, int digits, bool round) =>
        Cut(time, digits, round).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss" + (digits == 0 ? "" : "." + new string('f', digits)) + "'Z'", CultureInfo.InvariantCulture);

    /// <summary>One Patient version as a reader got it: the exact stamp, and the reader's copy of it.</summary>
    private sealed record FeedEntry(string Id, int Version, DateTimeOffset Stamp, string Copy);

    /// <summary>
    /// Reads at most <see cref="RunSize"/> new versions per run, following next links, then keeps its copy of the last
    /// entry's <c>meta.lastUpdated</c> and starts the next run with <c>_lastUpdated=gt&lt;copy&gt;</c>. A version it already
    /// holds (same id and versionId) is a repeat: counted and skipped.
    /// </summary>
    private sealed class ResumingReader(string name, Func<string?, IAsyncEnumerable<FeedEntry>> read)
    {
        private const int RunSize = 3;

        public string Name => name;

        public HashSet<(string Id, int Version)> Seen { get; } = [];

        public List<(string Id, int Version)> Order { get; } = [];

        public int Repeats { get; private set; }

        public int Resumes { get; private set; }

        public int LossyResumes { get; private set; }

        /// <summary>
        /// Resumptions whose first new version lay inside the last unit of the copy: the versions FHIR's own reading
        /// of gt (from the copy plus one unit) would have skipped.
        /// </summary>
        public int InsideTheLastUnit { get; private set; }

        /// <summary>Runs until <paramref name="writersDone"/> is set and three runs in a row bring nothing new.</summary>
        public async Task RunAsync(CancellationToken writersDone, CancellationToken timeout)
        {
            string? copy = null;
            var idle = 0;
            while (idle < 3)
            {
                timeout.ThrowIfCancellationRequested();
                if (copy is not null)
                {
                    Resumes++;
                    LossyResumes += FractionDigits(copy) < 6 ? 1 : 0;
                }

                var fresh = 0;
                var fhirFrom = copy is null ? (DateTimeOffset?)null
                    : DateTimeOffset.Parse(copy, CultureInfo.InvariantCulture).AddTicks((long)Math.Pow(10, 7 - Math.Min(7, FractionDigits(copy))));
                await foreach (var entry in read(copy).WithCancellation(timeout))
                {
                    copy = entry.Copy;
                    if (!Seen.Add((entry.Id, entry.Version)))
                    {
                        Repeats++;
                        continue;
                    }

                    InsideTheLastUnit += fresh == 0 && entry.Stamp < fhirFrom ? 1 : 0;
                    Order.Add((entry.Id, entry.Version));
                    if (++fresh == RunSize)
                    {
                        break;
                    }
                }

                idle = writersDone.IsCancellationRequested && fresh == 0 ? idle + 1 : 0;
                await Task.Delay(5, timeout);
            }
        }

        private static int FractionDigits(string instant)
        {
            var dot = instant.IndexOf('.', StringComparison.Ordinal);
            return dot < 0 ? 0 : instant[(dot + 1)..].TakeWhile(char.IsAsciiDigit).Count();
        }
    }
}

public sealed class SqliteFeedResumeTests(ITestOutputHelper output) : FeedResumeTests(output)
{
    private protected override Task<Dictionary<string, string?>> SettingsAsync() => Task.FromResult(new Dictionary<string, string?>());
}

public sealed class PostgresFeedResumeTests(PostgresServer postgres, ITestOutputHelper output) : FeedResumeTests(output), IClassFixture<PostgresServer>
{
    private protected override async Task<Dictionary<string, string?>> SettingsAsync() => new()
    {
        ["Pit:Storage:Provider"] = "Postgres",
        ["Pit:Storage:ConnectionString"] = await postgres.CreateDatabaseAsync(),
    };
}
