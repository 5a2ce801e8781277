using Hl7.Fhir.Model;
using Pit.Client;
using Pit.Security;
using Task = System.Threading.Tasks.Task;

namespace Pit.Sample;

/// <summary>The steps of the sample, each one call of <c>Pit.Client</c>.</summary>
internal static class SampleIntegration
{
    /// <summary>Where PIT is, which HelseID issues tokens, and the client with its private key (a JWK file).</summary>
    public static async Task<PitClientOptions> OptionsAsync(Uri baseAddress, Uri authority, string clientId, string keyFile, CancellationToken cancellationToken) => new()
    {
        BaseAddress = baseAddress,
        HelseId = new HelseIdClientOptions
        {
            Authority = authority,
            ClientId = clientId,
            ClientKey = await ClientSigningKey.FromFileAsync(keyFile, cancellationToken),
            // A multi-tenant client also sets OrganisationNumber (and ChildOrganisationNumber) here.
        },
    };

    /// <summary>
    /// Gets a token, submits a new synthetic Patient, waits until it is processed, then follows the change feed from
    /// just before the submission until that Patient's version arrives.
    /// </summary>
    /// <returns>The id of the Patient as PIT stored it.</returns>
    public static async Task<string> RunAsync(PitClientOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        using var pit = PitClient.Create(options);

        // 1. A HelseID access token bound to the client's DPoP key. PitClient gets and renews it by itself; asking
        //    here only shows that the credentials work before anything else is tried.
        var token = await pit.Tokens!.GetAccessTokenAsync(false, cancellationToken);
        log.WriteLine($"1. Access token with scopes {string.Join(' ', token.Scopes)}, valid until {token.ExpiresAt:u}.");

        // 2. Submit. 202 means stored durably; the Patient is applied shortly after. The fødselsnummer is a
        //    synthetic test number (month + 80): never send real people's data to a test server.
        var startedAt = DateTimeOffset.UtcNow.AddMinutes(-1);
        var patient = new Patient
        {
            Identifier = { new Identifier("urn:oid:2.16.578.1.12.4.1.4.1", NorwegianIdentityNumbers.Synthetic(new DateOnly(1990, 6, 15), Random.Shared.Next(500))) },
            Name = { new HumanName { Family = "Eksempel", Given = ["Sara"] } },
            Gender = AdministrativeGender.Female,
            BirthDate = "1990-06-15",
        };
        var statusUrl = await pit.SubmitPatientAsync(patient, cancellationToken);
        log.WriteLine($"2. Submitted; status at {statusUrl}");

        // 3. The status URL says when it is processed, and which Patient it became.
        var status = await pit.WaitForSubmissionAsync(statusUrl, TimeSpan.FromMilliseconds(250), cancellationToken);
        if (status.State != SubmissionState.Completed || status.PatientId is null)
        {
            throw new InvalidOperationException($"The submission ended {status.State}: {string.Join("; ", status.IssueLines)}");
        }

        log.WriteLine($"3. Processed into Patient/{status.PatientId}");

        // 4. Follow the feed: pages in _lastUpdated order, then long polls (Prefer: wait) for news. A real consumer
        //    stores each page's LastUpdated and starts there the next time, with _lastUpdated=gt<that value>.
        var search = new PatientSearch { Count = 50 };
        search.LastUpdated.Add("ge" + startedAt.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        await foreach (var page in pit.FollowPagesAsync(search, TimeSpan.FromSeconds(20), cancellationToken))
        {
            foreach (var entry in page.Entries)
            {
                log.WriteLine($"4. Feed: Patient/{entry.Id} version {entry.VersionId} at {entry.LastUpdated}");
                if (entry.Id == status.PatientId)
                {
                    return entry.Id;
                }
            }
        }

        throw new InvalidOperationException("The feed ended without the submitted Patient.");
    }

    /// <summary>The development client's key, found from the working directory upwards (run inside the repository).</summary>
    public static string FindDevKey()
    {
        for (var folder = new DirectoryInfo(Directory.GetCurrentDirectory()); folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, "dev", "helseid-standin", "dev-client.jwk.json");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("dev/helseid-standin/dev-client.jwk.json not found: run the sample inside the repository, or pass the four arguments.");
    }
}
