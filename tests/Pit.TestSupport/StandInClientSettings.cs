using Pit.HelseIdStandIn;

namespace Pit.TestSupport;

/// <summary>
/// Registers stand-in clients the way an operator would: as <c>Pit:Auth:StandIn:Clients:N:*</c> configuration keys
/// for a test server's configuration.
/// </summary>
public static class StandInClientSettings
{
    /// <summary>
    /// The keys of <paramref name="client"/> at <paramref name="index"/>. Use an index above 0 to keep the development
    /// client of appsettings.Development.json registered too.
    /// </summary>
    public static Dictionary<string, string?> For(int index, StandInClientOptions client)
    {
        var prefix = $"Pit:Auth:StandIn:Clients:{index}:";
        var settings = new Dictionary<string, string?>
        {
            [prefix + "ClientId"] = client.ClientId,
            [prefix + "ClientName"] = client.ClientName,
            [prefix + "Tenancy"] = client.Tenancy.ToString(),
            [prefix + "OrgnrParent"] = client.OrgnrParent,
            [prefix + "OrgnrChild"] = client.OrgnrChild,
            [prefix + "OrgnrSupplier"] = client.OrgnrSupplier,
        };
        Add(settings, prefix + "Scopes", client.Scopes);
        Add(settings, prefix + "ChildOrganisations", client.ChildOrganisations);
        for (var i = 0; i < client.Customers.Count; i++)
        {
            settings[$"{prefix}Customers:{i}:OrgnrParent"] = client.Customers[i].OrgnrParent;
            Add(settings, $"{prefix}Customers:{i}:ChildOrganisations", client.Customers[i].ChildOrganisations);
        }

        foreach (var (name, value) in client.PublicJwk)
        {
            settings[prefix + "PublicJwk:" + name] = value;
        }

        foreach (var key in settings.Where(s => s.Value is null).Select(s => s.Key).ToList())
        {
            settings.Remove(key);
        }

        return settings;
    }

    /// <summary>The settings of several registrations together.</summary>
    public static Dictionary<string, string?> Merge(params Dictionary<string, string?>[] parts) =>
        parts.SelectMany(p => p).ToDictionary(p => p.Key, p => p.Value);

    private static void Add(Dictionary<string, string?> settings, string key, IReadOnlyList<string> values)
    {
        for (var i = 0; i < values.Count; i++)
        {
            settings[$"{key}:{i}"] = values[i];
        }
    }
}
