namespace Pit.Client;

/// <summary>Everything <see cref="PitClient.Create(PitClientOptions)"/> needs to talk to a PIT server.</summary>
public sealed class PitClientOptions
{
    /// <summary>The PIT test environment, <c>https://api.pit.test.nhn.no/</c>.</summary>
    public static readonly Uri TestBaseAddress = new("https://api.pit.test.nhn.no/");

    /// <summary>The server's base address; requests go to <c>{BaseAddress}v1/Patient</c>.</summary>
    public required Uri BaseAddress { get; set; }

    /// <summary>Token acquisition from HelseID.</summary>
    public required HelseIdClientOptions HelseId { get; set; }

    /// <summary>Retries on 429 and 503, waiting as <c>Retry-After</c> says (else exponential back-off). Default 4.</summary>
    public int MaxRetryAttempts { get; set; } = 4;

    /// <summary>First back-off delay when the server gives no <c>Retry-After</c>. Default 1 second.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Timeout of one HTTP attempt. Default 100 seconds.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>The innermost handler (for tests or custom proxies); a <see cref="SocketsHttpHandler"/> when null.</summary>
    public HttpMessageHandler? PrimaryHandler { get; set; }
}
