using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Pit.TestSupport;

/// <summary>Gets a DPoP-bound token from a HelseID(-stand-in) token endpoint with a <c>private_key_jwt</c> client assertion.</summary>
public static class StandInTokenClient
{
    /// <summary>The client-assertion type of RFC 7523.</summary>
    public const string JwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    /// <summary>
    /// Posts a client-credentials request to <paramref name="tokenEndpoint"/> with an assertion signed by
    /// <paramref name="clientKey"/> (<c>aud</c> = <paramref name="issuer"/>, as HelseID expects), proving possession
    /// of <paramref name="dpopKey"/> and answering the nonce challenge once. Throws when no token is issued.
    /// </summary>
    public static async Task<TokenResponse> RequestTokenAsync(
        Uri tokenEndpoint, string issuer, string clientId, DpopKey clientKey, DpopKey dpopKey, IEnumerable<string> scopes, CancellationToken cancellationToken = default)
    {
        var (status, body) = await SendAsync(tokenEndpoint, clientId, clientKey.CreateClientAssertion(clientId, issuer), dpopKey, scopes, cancellationToken);
        if (status != HttpStatusCode.OK)
        {
            throw new HttpRequestException($"Token request failed with {(int)status}: {body}");
        }

        return JsonSerializer.Deserialize<TokenResponse>(body)!;
    }

    /// <summary>Sends one token request (with the nonce retry) and returns the final status and body.</summary>
    public static async Task<(HttpStatusCode Status, string Body)> SendAsync(
        Uri tokenEndpoint, string clientId, string clientAssertion, DpopKey dpopKey, IEnumerable<string> scopes, CancellationToken cancellationToken = default)
    {
        using var http = new HttpClient(new DpopHttpHandler(dpopKey, (Func<CancellationToken, ValueTask<string>>?)null) { InnerHandler = new SocketsHttpHandler() });
        using var form = new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_assertion_type"] = JwtBearerAssertionType,
            ["client_assertion"] = clientAssertion,
            ["scope"] = string.Join(' ', scopes),
        });
        using var response = await http.PostAsync(tokenEndpoint, form, cancellationToken);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
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
