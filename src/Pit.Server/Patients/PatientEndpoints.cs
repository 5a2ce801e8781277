using Pit.Server.Auth;

namespace Pit.Server.Patients;

internal static class PatientEndpoints
{
    public static IServiceCollection AddPitPatients(this IServiceCollection services, IConfiguration configuration) => services;

    public static WebApplication MapPitPatients(this WebApplication app)
    {
        var v1 = app.MapGroup("/v1");
        v1.MapPost("/Patient", () => Results.StatusCode(501)).RequireAuthorization(PitPolicies.Write);
        v1.MapGet("/Patient", () => Results.StatusCode(501)).RequireAuthorization(PitPolicies.Read);
        v1.MapGet("/Patient/{id}", (string id) => Results.StatusCode(501)).RequireAuthorization(PitPolicies.Read);
        return app;
    }
}
