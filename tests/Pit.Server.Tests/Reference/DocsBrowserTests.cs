using System.Text.Json;
using System.Text.RegularExpressions;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Reference;

/// <summary>
/// Opens /docs in a real headless Chromium (Debian's package; scripts/test.sh installs it) against the real server
/// on loopback, as an integrator on a hospital network without internet access would.
/// </summary>
public sealed class DocsBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task The_reference_page_renders_both_patient_operations_and_asks_no_other_host_for_anything()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: scripts/test.sh installs Debian's chromium package.");
        await using var server = await TestServer.StartAsync();
        var work = Directory.CreateTempSubdirectory("pit-chromium-").FullName;
        try
        {
            var netLog = Path.Combine(work, "net-log.json");
            // Opened at the Patient tag, as a link to it would: Scalar renders the operations of the tag in view.
            var dom = await RunChromiumAsync(new Uri(server.BaseAddress, "docs#tag/patient"), work, netLog);

            // Scalar builds these from /openapi/v1.json in the browser: the served HTML holds none of them.
            Assert.Matches(Endpoint("POST", "/v1/Patient"), dom);
            Assert.Matches(Endpoint("GET", "/v1/Patient"), dom);
            Assert.Contains("PIT-API (Pasientinformasjonstjenesten)", dom, StringComparison.Ordinal);

            var pageRequests = PageRequests(netLog, server.BaseAddress);
            Assert.Contains(pageRequests, u => u.AbsolutePath == "/openapi/v1.json");
            Assert.Contains(pageRequests, u => u.AbsolutePath.EndsWith(".js", StringComparison.Ordinal));
            Assert.All(pageRequests, u => Assert.Equal(server.BaseAddress.Authority, u.Authority));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    [Fact]
    public async Task The_reference_page_shows_dpop_examples_against_the_server_and_no_placeholder_authentication()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: scripts/test.sh installs Debian's chromium package.");
        await using var server = await TestServer.StartAsync();
        var work = Directory.CreateTempSubdirectory("pit-chromium-").FullName;
        try
        {
            // The page renders the operation the address names, with its example request.
            var html = await RunChromiumAsync(new Uri(server.BaseAddress, "docs#tag/patient/POST/v1/Patient"), work, Path.Combine(work, "net-log.json"));
            var text = System.Net.WebUtility.HtmlDecode(Regex.Replace(html, "<[^>]+>", ""));

            Assert.DoesNotContain("YOUR_SECRET_TOKEN", text, StringComparison.Ordinal);
            Assert.DoesNotContain("No authentication selected", text, StringComparison.Ordinal);
            Assert.DoesNotContain("Basic ", text, StringComparison.Ordinal);
            Assert.DoesNotContain("username:password", text, StringComparison.Ordinal);
            Assert.Contains("DPoP & DPoPProof", text, StringComparison.Ordinal);
            // The C# example of the POST, with both headers, the server's own URL and the example Patient.
            Assert.Contains($"new HttpRequestMessage(HttpMethod.Post, \"{server.BaseAddress}v1/Patient\")", text, StringComparison.Ordinal);
            Assert.Contains("request.Headers.Authorization = new AuthenticationHeaderValue(\"DPoP\", \"<access-token>\")", text, StringComparison.Ordinal);
            Assert.Contains("request.Headers.TryAddWithoutValidation(\"DPoP\", \"<DPoP proof JWT>\")", text, StringComparison.Ordinal);
            Assert.Contains("\"system\":\"urn:oid:2.16.578.1.12.4.1.4.1\"", text, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static Regex Endpoint(string method, string path) =>
        new($"<a[^>]*href=\"#tag/patient/{method}{Regex.Escape(path)}\"[^>]*>\\s*<span[^>]*endpoint-method[^>]*>\\s*{method.ToLowerInvariant()}\\s*</span>");

    private static async Task<string> RunChromiumAsync(Uri url, string work, string netLog)
    {
        var result = await ServerCommandLine.RunProgramAsync(Chromium, work, new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            // The browser's own form-autofill lookups are filed under the page's site; they are not the page's requests.
            "--disable-features=AutofillServerCommunication",
            // Nothing leaves this machine even if the page asked: every other host fails to resolve (the net log still records the try).
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            // Virtual time runs ahead only while the page is idle, so a slow, busy machine gets all the real time it needs.
            "--virtual-time-budget=30000",
            $"--user-data-dir={Path.Combine(work, "profile")}", $"--log-net-log={netLog}", "--dump-dom", url.ToString(),
        });

        Assert.True(result.ExitCode == 0, $"chromium exited with {result.ExitCode}: {result.Errors}");
        return result.Output;
    }

    /// <summary>
    /// Every URL the page asked for. The browser's own background traffic (update checks and the like) carries a
    /// different network isolation key than requests made for a page whose top frame is the server's site.
    /// </summary>
    private static List<Uri> PageRequests(string netLog, Uri server)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(netLog));
        var startJob = document.RootElement.GetProperty("constants").GetProperty("logEventTypes").GetProperty("URL_REQUEST_START_JOB").GetInt32();
        var site = $"{server.Scheme}://{server.Host}";
        var urls = new List<Uri>();
        foreach (var e in document.RootElement.GetProperty("events").EnumerateArray())
        {
            if (e.GetProperty("type").GetInt32() == startJob
                && e.TryGetProperty("params", out var p)
                && p.TryGetProperty("network_isolation_key", out var key)
                && key.GetString()!.StartsWith(site + " ", StringComparison.Ordinal))
            {
                urls.Add(new Uri(p.GetProperty("url").GetString()!));
            }
        }

        return urls;
    }
}
