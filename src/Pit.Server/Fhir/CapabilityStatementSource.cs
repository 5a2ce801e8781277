using System.Globalization;
using Hl7.Fhir.Model;
using Microsoft.Extensions.Options;
using Pit.Server.Feed;
using Pit.Server.Upsert;

namespace Pit.Server.Fhir;

/// <summary>The server's CapabilityStatement: exactly what is implemented, built once per base URL.</summary>
internal sealed class CapabilityStatementSource(
    FhirJson json, PublicBaseUrl baseUrl, TimeProvider time, IOptions<FeedOptions> feed, StructureDefinitionSource definitions)
{
    private readonly DateTimeOffset _started = time.GetUtcNow();
    private (string Base, byte[] Json)? _cached;

    public byte[] Get(HttpContext context)
    {
        var root = baseUrl.For(context.Request) + "/v1";
        var cached = _cached;
        if (cached is { } c && c.Base == root)
        {
            return c.Json;
        }

        var bytes = json.Serialize(Build(root));
        _cached = (root, bytes);
        return bytes;
    }

    private CapabilityStatement Build(string root) => new()
    {
        Name = "PitServer", // cpb-0: a machine-usable name
        Title = "PIT server",
        Status = PublicationStatus.Active,
        Date = _started.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        Kind = CapabilityStatementKind.Instance,
        Software = new CapabilityStatement.SoftwareComponent { Name = "PIT server", Version = Operability.ServerVersion.Value },
        Implementation = new CapabilityStatement.ImplementationComponent { Description = "PIT-API (Pasientinformasjonstjenesten)", Url = root },
        FhirVersion = FHIRVersion.N4_0_1,
        Format = ["application/fhir+json", "json"],
        Rest =
        [
            new CapabilityStatement.RestComponent
            {
                Mode = CapabilityStatement.RestfulCapabilityMode.Server,
                Security = new CapabilityStatement.SecurityComponent
                {
                    Description = "HelseID access tokens bound with DPoP (RFC 9449): 'Authorization: DPoP <token>' and a DPoP proof on every request. " +
                        "Scope nhn:pit/api.read to read, nhn:pit/api.write to submit; claim helseid://claims/client/claims/orgnr_parent required.",
                },
                Resource =
                [
                    new CapabilityStatement.ResourceComponent
                    {
                        Type = "Patient",
                        Documentation = ProvenanceExtensions.Description,
                        Interaction =
                        [
                            new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Read },
                            new CapabilityStatement.ResourceInteractionComponent
                            {
                                Code = CapabilityStatement.TypeRestfulInteraction.Create,
                                Documentation = "Asynchronous upsert by person identifier: 202 Accepted with Content-Location of a status URL.",
                            },
                            new CapabilityStatement.ResourceInteractionComponent
                            {
                                Code = CapabilityStatement.TypeRestfulInteraction.SearchType,
                                Documentation = LongPolling(),
                            },
                        ],
                        Versioning = CapabilityStatement.ResourceVersionPolicy.Versioned,
                        ReadHistory = false,
                        UpdateCreate = false,
                        SearchParam =
                        [
                            new CapabilityStatement.SearchParamComponent
                            {
                                Name = "_lastUpdated", Type = SearchParamType.Date,
                                Documentation = "Prefix gt, ge, lt or le required; at least minute precision with a time zone; may appear twice to form a range. " +
                                    "FHIR's precision semantics, except for resuming the feed: meta.lastUpdated has microsecond precision, and a gt value " +
                                    "with seconds but fewer than six fractional digits (a client's copy that lost digits) means after the value minus one " +
                                    "unit of its last digit (gt...:53.004Z: after ...:53.003), so a truncated, rounded or zero-stripped copy never skips a " +
                                    "version and repeats only those stamped after that point; with six or more digits gt means after exactly that instant.",
                            },
                            new CapabilityStatement.SearchParamComponent { Name = "_count", Type = SearchParamType.Number, Documentation = "Page size 1-50, default 20." },
                            new CapabilityStatement.SearchParamComponent { Name = "_sort", Type = SearchParamType.String, Documentation = "_lastUpdated (default) or -_lastUpdated." },
                            new CapabilityStatement.SearchParamComponent { Name = "cursor", Type = SearchParamType.String, Documentation = "Opaque continuation from a Bundle's next link; not combinable with _lastUpdated." },
                        ],
                    },
                    new CapabilityStatement.ResourceComponent
                    {
                        Type = "StructureDefinition",
                        Documentation = "The definitions of the provenance extensions (" + string.Join(", ", definitions.Urls) +
                            "), read without authentication.",
                        Interaction = [new CapabilityStatement.ResourceInteractionComponent { Code = CapabilityStatement.TypeRestfulInteraction.Read }],
                    },
                ],
            },
        ],
    };

    private string LongPolling()
    {
        var settings = feed.Value;
        var max = ((int)settings.MaxWait.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return settings.MaxWait <= TimeSpan.Zero
            ? "The change feed: poll with _lastUpdated=gt<the last lastUpdated seen>. Long polling (Prefer: wait) is turned off on this server."
            : "The change feed, with long polling: send 'Prefer: wait=N' (seconds, at most " + max + "; longer is shortened) and a search " +
              "whose page would be empty is held until a matching Patient becomes visible or N seconds pass (then an empty Bundle). " +
              "Answered with 'Preference-Applied: wait=N' when held; at most " +
              settings.MaxWaitersPerClient.ToString(CultureInfo.InvariantCulture) + " searches per client wait at once, more are answered at once.";
    }
}
