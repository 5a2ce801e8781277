using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pit.Server.Tests.Infrastructure;

/// <summary>Typed helpers over an HTTP client of the PIT API, for tests.</summary>
public static class PitApi
{
    /// <summary>POSTs a Patient and asserts 202; returns the status URL.</summary>
    public static async Task<Uri> SubmitAsync(this HttpClient client, string json)
    {
        using var response = await client.PostAsync("v1/Patient", TestPatients.Content(json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"Expected 202, got {(int)response.StatusCode}: {body}");
        return response.Content.Headers.ContentLocation ?? throw new InvalidOperationException("No Content-Location.");
    }

    /// <summary>Polls the status URL until processed; returns the final response's status and body.</summary>
    public static async Task<(HttpStatusCode Status, JsonNode Body, Uri? Location)> WaitProcessedAsync(this HttpClient client, Uri statusUrl)
    {
        for (var i = 0; i < 300; i++)
        {
            using var response = await client.GetAsync(statusUrl);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            if (response.StatusCode != HttpStatusCode.Accepted)
            {
                return (response.StatusCode, body, response.Headers.Location);
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"{statusUrl} was not processed.");
    }

    /// <summary>Submits and waits; returns the Patient as stored.</summary>
    public static async Task<JsonNode> SubmitAndReadAsync(this HttpClient client, string json)
    {
        var (status, body, location) = await client.WaitProcessedAsync(await client.SubmitAsync(json));
        Assert.True(status == HttpStatusCode.OK, body.ToJsonString());
        Assert.NotNull(location);
        return await client.GetJsonAsync(location!.ToString(), HttpStatusCode.OK);
    }

    /// <summary>GETs and asserts the status; returns the JSON body.</summary>
    public static async Task<JsonNode> GetJsonAsync(this HttpClient client, string url, HttpStatusCode expected)
    {
        using var response = await client.GetAsync(url);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"Expected {(int)expected} from {url}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(text)!;
    }

    /// <summary>The entries' resources of a searchset Bundle.</summary>
    public static IReadOnlyList<JsonNode> Resources(this JsonNode bundle) =>
        [.. (bundle["entry"]?.AsArray() ?? []).Where(e => (string?)e!["search"]?["mode"] == "match").Select(e => e!["resource"]!)];

    /// <summary>The URL of a Bundle link, or null.</summary>
    public static string? Link(this JsonNode bundle, string relation) =>
        (string?)bundle["link"]?.AsArray().FirstOrDefault(l => (string?)l!["relation"] == relation)?["url"];

    /// <summary>Asserts an OperationOutcome with an error issue of <paramref name="code"/>; returns all diagnostics joined.</summary>
    public static string AssertOutcome(JsonNode body, string code)
    {
        Assert.Equal("OperationOutcome", (string?)body["resourceType"]);
        var issues = body["issue"]!.AsArray();
        Assert.Contains(issues, i => (string?)i!["code"] == code);
        return string.Join(" | ", issues.Select(i => (string?)i!["diagnostics"]));
    }

    /// <summary>Sends and returns status and parsed body.</summary>
    public static async Task<(HttpStatusCode Status, JsonNode Body)> SendJsonAsync(this HttpClient client, HttpRequestMessage request)
    {
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        try
        {
            return (response.StatusCode, JsonNode.Parse(text)!);
        }
        catch (JsonException)
        {
            throw new InvalidOperationException($"Not JSON ({(int)response.StatusCode}): {text}");
        }
    }
}
