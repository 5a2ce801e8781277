using System.Net;
using Pit.Server.Tests.Infrastructure;
using System.Text.Json;

namespace Pit.Server.Tests.Auth;

internal static class AuthAssert
{
    public const string AllProofAlgorithms = "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512";

    public static string Challenge(HttpResponseMessage response) =>
        response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values) ? string.Join(", ", values) : "";

    /// <summary>401 with a DPoP challenge carrying <paramref name="error"/> (none when null) and an OperationOutcome.</summary>
    public static async Task UnauthorizedAsync(HttpResponseMessage response, string? error, string? descriptionContains = null)
    {
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var challenge = Challenge(response);
        Assert.StartsWith("DPoP ", challenge, StringComparison.Ordinal);
        Assert.Contains($"algs=\"{AllProofAlgorithms}\"", challenge, StringComparison.Ordinal);
        if (error is null)
        {
            Assert.DoesNotContain("error=", challenge, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains($"error=\"{error}\"", challenge, StringComparison.Ordinal);
            Assert.Contains("error_description=\"", challenge, StringComparison.Ordinal);
        }

        if (descriptionContains is not null)
        {
            Assert.Contains(descriptionContains, challenge, StringComparison.Ordinal);
        }

        var code = await OperationOutcomeCodeAsync(response);
        Assert.Contains(code, new[] { "login", "security" });
    }

    /// <summary>403 with an OperationOutcome whose diagnostics mention <paramref name="diagnosticsContains"/>.</summary>
    public static async Task ForbiddenAsync(HttpResponseMessage response, string diagnosticsContains)
    {
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("forbidden", await OperationOutcomeCodeAsync(response));
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var diagnostics = document.RootElement.GetProperty("issue")[0].GetProperty("diagnostics").GetString();
        Assert.Contains(diagnosticsContains, diagnostics, StringComparison.Ordinal);
    }

    public static void PassedAuthentication(HttpResponseMessage response) =>
        Assert.True(
            response.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden),
            $"expected auth to pass, got {(int)response.StatusCode}: {Challenge(response)}");

    private static async Task<string> OperationOutcomeCodeAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/fhir+json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("OperationOutcome", document.RootElement.GetProperty("resourceType").GetString());
        var issue = document.RootElement.GetProperty("issue")[0];
        Assert.Equal("error", issue.GetProperty("severity").GetString());
        return issue.GetProperty("code").GetString()!;
    }
}

/// <summary>One server per test class, shared by its tests.</summary>
public sealed class AuthServerFixture : IAsyncLifetime
{
    public TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TestServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
