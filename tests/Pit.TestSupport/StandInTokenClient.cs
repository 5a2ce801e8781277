using System.Net.Http.Json;
using System.Text.Json.Serialization;

namespace Pit.TestSupport;

/// <summary>Gets a DPoP-bound token from a HelseID(-stand-in) token endpoint with a <c>private_key_jwt</c> client assertion.</summary>
public static class StandInTokenClient
{
    /// <summary>
    /// Posts a client-credentials request to <paramref name="tokenEndpoint"/> signed by <paramref name="clientKey"/>,
    /// proving possession of <paramref name="dpopKey"/> and answering the nonce challenge once. The assertion's
    /// <c>aud</c> is <paramref name="issuer"/>, as HelseID expects.
    /// </summary>
    public static async Task<TokenResponse> RequestTokenAsync(
        Uri tokenEndpoint, string issuer, string clientId, DpopKey clientKey, DpopKey dpopKey, IEnumerable<string> scopes, CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient(new DpopHttpHandler(dpopKey, (Func<CancellationToken, ValueTask<string>>?)null) { InnerHandler = new SocketsHttpHandler() });
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = clientKey.CreateClientAssertion(clientId, issuer),
            ["scope"] = string.Join(' ', scopes),
        });
        using var response = await http.PostAsync(tokenEndpoint, form, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"Token request failed with {(int)response.StatusCode}: {body}");
        }

        return System.Text.Json.JsonSerializer.Deserialize<TokenResponse>(body)!;
    }
}

/// <summary>A token endpoint's success answer.</summary>
/// <param name="AccessToken">The DPoP-bound access token.</param>
/// <param name="TokenType">Always <c>DPoP</c>.</param>
/// <param name="ExpiresIn">Lifetime in seconds.</param>
/// <param name="Scope">Granted scopes, space-separated.</param>
public sealed record TokenResponse(
    [property: JsonPropertyName("access_token")] string AccessToken,
    [property: JsonPropertyName("token_type")] string TokenType,
    [property: JsonPropertyName("expires_in")] int ExpiresIn,
    [property: JsonPropertyName("scope")] string Scope);
