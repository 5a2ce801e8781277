using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

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
    public static string FromParts(int day, int month, int year, int individual)
    {
        for (var i = individual; ; i = (i + 1) % 500)
        {
            var baseDigits = string.Create(CultureInfo.InvariantCulture, $"{day:00}{month:00}{year:00}{i:000}");
            var k1 = Control(baseDigits, [3, 7, 6, 1, 8, 9, 4, 5, 2]);
            if (k1 < 0)
            {
                continue;
            }

            var k2 = Control(baseDigits + k1, [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]);
            if (k2 < 0)
            {
                continue;
            }

            return string.Create(CultureInfo.InvariantCulture, $"{baseDigits}{k1}{k2}");
        }
    }

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

    private static int Control(string digits, int[] weights)
    {
        var sum = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            sum += (digits[i] - '0') * weights[i];
        }

        var c = 11 - (sum % 11);
        return c == 11 ? 0 : c == 10 ? -1 : c;
    }
}
