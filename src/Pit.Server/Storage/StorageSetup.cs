namespace Pit.Server.Storage;

internal static class StorageSetup
{
    public static IServiceCollection AddPitStorage(this IServiceCollection services, IConfiguration configuration, IHostEnvironment environment) => services;

    public static WebApplication MapPitHealth(this WebApplication app) => app;
}
