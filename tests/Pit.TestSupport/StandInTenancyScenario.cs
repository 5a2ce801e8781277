using Pit.HelseIdStandIn;

namespace Pit.TestSupport;

/// <summary>
/// The stand-in registrations the tenancy tests share: a supplier's multi-tenant client serving two customers (one
/// with a sub-unit), and a single-tenant clinic client with a registered sub-unit. <see cref="Stranger"/> is an
/// organisation neither may act for.
/// </summary>
public static class StandInTenancyScenario
{
    /// <summary>The supplier's multi-tenant client.</summary>
    public const string SaasClient = "pit-saas-client";
    /// <summary>Its client name.</summary>
    public const string SaasClientName = "PIT SaaS test client";
    /// <summary>The clinic's single-tenant client.</summary>
    public const string ClinicClient = "pit-clinic-client";
    /// <summary>The supplier (orgnr_supplier) of the multi-tenant client.</summary>
    public const string Supplier = "910000004";
    /// <summary>A customer of the supplier.</summary>
    public const string CustomerA = "920000002";
    /// <summary>A customer of the supplier with a sub-unit.</summary>
    public const string CustomerB = "940000009";
    /// <summary>The sub-unit of customer B.</summary>
    public const string CustomerBChild = "930000000";
    /// <summary>The single-tenant clinic.</summary>
    public const string Clinic = "950000007";
    /// <summary>The clinic's registered sub-unit.</summary>
    public const string ClinicChild = "960000005";
    /// <summary>An organisation neither client may act for.</summary>
    public const string Stranger = "970000003";

    /// <summary>The configuration keys registering both clients with these public keys.</summary>
    public static Dictionary<string, string?> Settings(Dictionary<string, string> saasPublicJwk, Dictionary<string, string> clinicPublicJwk)
    {
        string[] scopes = [AccessTokenMinter.ReadScope, AccessTokenMinter.WriteScope];
        return StandInClientSettings.Merge(
            StandInClientSettings.For(6, new StandInClientOptions
            {
                ClientId = SaasClient,
                ClientName = SaasClientName,
                Tenancy = StandInTenancy.MultiTenant,
                OrgnrSupplier = Supplier,
                Customers = [new() { OrgnrParent = CustomerA }, new() { OrgnrParent = CustomerB, ChildOrganisations = [CustomerBChild] }],
                Scopes = scopes,
                PublicJwk = saasPublicJwk,
            }),
            StandInClientSettings.For(7, new StandInClientOptions
            {
                ClientId = ClinicClient,
                OrgnrParent = Clinic,
                ChildOrganisations = [ClinicChild],
                Scopes = scopes,
                PublicJwk = clinicPublicJwk,
            }));
    }
}
