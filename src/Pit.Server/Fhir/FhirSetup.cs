namespace Pit.Server.Fhir;

internal static class FhirSetup
{
    public static IServiceCollection AddPitFhir(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<PitOptions>().Bind(configuration.GetSection("Pit"));
        services.AddSingleton<PublicBaseUrl>();
        return services;
    }

    public static WebApplication UsePitFhirErrors(this WebApplication app) => app;

    public static WebApplication MapPitMetadata(this WebApplication app) => app;
}
