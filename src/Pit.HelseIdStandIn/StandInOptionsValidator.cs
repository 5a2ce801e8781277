using Microsoft.Extensions.Options;

namespace Pit.HelseIdStandIn;

/// <summary>
/// Refuses, at start-up, client registrations that do not say which organisations the client serves: a
/// single-tenant client needs its <c>OrgnrParent</c>, a multi-tenant client its <c>OrgnrSupplier</c> and customers.
/// </summary>
internal sealed class StandInOptionsValidator : IValidateOptions<StandInOptions>
{
    public ValidateOptionsResult Validate(string? name, StandInOptions options)
    {
        var failures = new List<string>();
        for (var i = 0; i < options.Clients.Count; i++)
        {
            var client = options.Clients[i];
            var at = $"Pit:Auth:StandIn:Clients:{i} ({client.ClientId})";
            if (string.IsNullOrWhiteSpace(client.ClientId))
            {
                failures.Add($"{at}: ClientId is required.");
            }

            if (client.Tenancy == StandInTenancy.MultiTenant)
            {
                if (string.IsNullOrEmpty(client.OrgnrSupplier) || client.Customers.Count == 0)
                {
                    failures.Add($"{at}: a MultiTenant client needs OrgnrSupplier and at least one entry in Customers.");
                }

                if (client.OrgnrParent is not null || client.OrgnrChild is not null || client.ChildOrganisations.Length > 0)
                {
                    failures.Add($"{at}: a MultiTenant client names its organisations under Customers, not in OrgnrParent, OrgnrChild or ChildOrganisations.");
                }
            }
            else
            {
                if (string.IsNullOrEmpty(client.OrgnrParent))
                {
                    failures.Add($"{at}: a SingleTenant client needs OrgnrParent.");
                }

                if (client.OrgnrSupplier is not null || client.Customers.Count > 0)
                {
                    failures.Add($"{at}: OrgnrSupplier and Customers are for MultiTenant clients (set Tenancy=MultiTenant).");
                }
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
