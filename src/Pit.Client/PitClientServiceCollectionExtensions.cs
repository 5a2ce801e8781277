using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Pit.Client;

/// <summary>Registers <see cref="PitClient"/> with <c>IHttpClientFactory</c> for hosts that use dependency injection.</summary>
public static class PitClientServiceCollectionExtensions
{
    /// <summary>
    /// Adds a typed <see cref="PitClient"/> (retries on 429/503 honouring <c>Retry-After</c>, then <see cref="DpopHandler"/>)
    /// and a singleton <see cref="HelseIdTokenClient"/> that caches the access token for the whole application.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="options">Builds the options once, for example from configuration and a key file.</param>
    /// <returns>The PIT client's builder, for further handlers.</returns>
    public static IHttpClientBuilder AddPitClient(this IServiceCollection services, Func<IServiceProvider, PitClientOptions> options)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        const string TokenClientName = "Pit.Client.HelseId";

        services.TryAddSingleton(sp => new PitClientRegistration(options(sp)));
        var tokenHttp = services.AddHttpClient(TokenClientName);
        tokenHttp.ConfigurePrimaryHttpMessageHandler(sp => Primary(sp) ?? new SocketsHttpHandler());
        services.TryAddSingleton(sp => new HelseIdTokenClient(
            sp.GetRequiredService<IHttpClientFactory>().CreateClient(TokenClientName),
            sp.GetRequiredService<PitClientRegistration>().Options.HelseId));
        services.TryAddSingleton<IDpopTokenSource>(sp => sp.GetRequiredService<HelseIdTokenClient>());

        var builder = services.AddHttpClient<PitClient>((sp, http) =>
        {
            var baseAddress = sp.GetRequiredService<PitClientRegistration>().Options.BaseAddress;
            http.BaseAddress = baseAddress.AbsoluteUri.EndsWith('/') ? baseAddress : new Uri(baseAddress.AbsoluteUri + "/");
            http.Timeout = Timeout.InfiniteTimeSpan;
        });
        builder.AddResilienceHandler("pit-retries", (pipeline, context) =>
            PitClient.AddRetries(pipeline, context.ServiceProvider.GetRequiredService<PitClientRegistration>().Options));
        builder.AddHttpMessageHandler(sp => new DpopHandler(sp.GetRequiredService<IDpopTokenSource>()));
        builder.ConfigurePrimaryHttpMessageHandler(sp => Primary(sp) ?? new SocketsHttpHandler());
        return builder;
    }

    private static HttpMessageHandler? Primary(IServiceProvider services) =>
        services.GetRequiredService<PitClientRegistration>().Options.PrimaryHandler is { } primary ? new PitClient.NonDisposingHandler(primary) : null;
}

/// <summary>The options given to <see cref="PitClientServiceCollectionExtensions.AddPitClient"/>, built once.</summary>
internal sealed class PitClientRegistration(PitClientOptions options)
{
    public PitClientOptions Options { get; } = options;
}
