namespace Pit.Server.Processing;

internal static class ProcessingSetup
{
    public static IServiceCollection AddPitProcessing(this IServiceCollection services, IConfiguration configuration) => services;
}
