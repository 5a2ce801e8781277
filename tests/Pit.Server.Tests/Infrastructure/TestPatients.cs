using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Pit.TestSupport;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>Synthetic Norwegian identity numbers and Patient bodies for tests.</summary>
public static class TestPatients
{
    public const string FnrSystem = "urn:oid:2.16.578.1.12.4.1.4.1";
    public const string DnrSystem = "urn:oid:2.16.578.1.12.4.1.4.2";

    private static int _next;

    /// <summary>A valid fødselsnummer; <paramref name="monthOffset"/> 0 for a real-looking one, 40 or 80 for synthetic.</summary>
    public static string Fnr(DateOnly birth, int individual, int monthOffset = 80, bool dNumber = false) =>
        FromParts(birth.Day + (dNumber ? 40 : 0), birth.Month + monthOffset, birth.Year % 100, individual);

    /// <summary>An 11-digit number with valid control digits for these parts, whether or not the date exists.</summary>
    public static string FromParts(int day, int month, int year, int individual) =>
        SyntheticIdentities.FromParts(day, month, year, individual);

    /// <summary>A fresh synthetic fødselsnummer, different on every call (born in the 1900s, individual 000-499).</summary>
    public static string NewFnr()
    {
        var n = Interlocked.Increment(ref _next);
        var birth = new DateOnly(1940, 1, 1).AddDays(n % 20000);
        return Fnr(birth, (n / 20000 * 7) % 500);
    }

    /// <summary>A Patient JSON body.</summary>
    public static string Json(string fnr, string family = "Nordmann", string given = "Kari", string system = FnrSystem) =>
        new JsonObject
        {
            ["resourceType"] = "Patient",
            ["identifier"] = new JsonArray(new JsonObject { ["system"] = system, ["value"] = fnr }),
            ["name"] = new JsonArray(new JsonObject { ["family"] = family, ["given"] = new JsonArray(given) }),
            ["gender"] = "female",
        }.ToJsonString();

    /// <summary>A FHIR JSON request body.</summary>
    public static StringContent Content(string json, string mediaType = "application/fhir+json") =>
        new(json, Encoding.UTF8, new MediaTypeHeaderValue(mediaType));

    /// <summary>
    /// A Patient with one good identity number and <paramref name="count"/> whose control digits are wrong (about
    /// 65 bytes each): a body that makes the server find <paramref name="count"/> problems.
    /// </summary>
    public static string WithBadIdentityNumbers(int count)
    {
        var identifiers = new JsonArray(new JsonObject { ["system"] = FnrSystem, ["value"] = NewFnr() });
        for (var i = 0; i < count; i++)
        {
            var good = NewFnr();
            var bad = good[..10] + (char)('0' + ((good[10] - '0' + 1) % 10));
            identifiers.Add(new JsonObject { ["system"] = FnrSystem, ["value"] = bad });
        }

        return new JsonObject { ["resourceType"] = "Patient", ["identifier"] = identifiers }.ToJsonString();
    }
}
