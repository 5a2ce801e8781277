using Microsoft.Extensions.Options;
using Pit.Server.Auth;

namespace Pit.Server.Tests.Auth;

/// <summary>The small pure pieces: organisation numbers, htu normalisation, nonces.</summary>
public sealed class AuthUnitTests
{
    [Theory]
    [InlineData("974762501", true)]
    [InlineData("123456785", true)]
    [InlineData("987654325", true)]
    [InlineData("974762502", false)]
    [InlineData("97476250", false)]
    [InlineData("９７４７６２５０１", false)]
    [InlineData("123456789", false)]
    [InlineData(null, false)]
    public void Organisation_numbers_are_checked_with_mod_11(string? value, bool valid) =>
        Assert.Equal(valid, OrganisationNumber.IsValid(value));

    [Fact]
    public void Organisation_number_whose_control_digit_would_be_10_is_invalid()
    {
        // 00000006x: sum = 6*2 = 12, 12 % 11 = 1, 11 - 1 = 10: no valid control digit exists.
        for (var digit = 0; digit <= 9; digit++)
        {
            Assert.False(OrganisationNumber.IsValid("00000006" + digit));
        }
    }

    [Theory]
    [InlineData("HTTPS://API.Pit.Test.NHN.no:443/v1/Patient", "https://api.pit.test.nhn.no/v1/Patient")]
    [InlineData("http://localhost:80/v1/Patient?x=1#frag", "http://localhost/v1/Patient")]
    [InlineData("http://localhost:5080/v1/%50atient", "http://localhost:5080/v1/Patient")]
    [InlineData("http://localhost/v1/a%2fb", "http://localhost/v1/a%2Fb")]
    [InlineData("http://localhost/v1/./x/../Patient", "http://localhost/v1/Patient")]
    [InlineData("http://localhost", "http://localhost/")]
    public void Htu_is_normalised_per_RFC_3986(string input, string expected) =>
        Assert.Equal(expected, HtuNormaliser.Normalise(input));

    [Theory]
    [InlineData("/v1/Patient")]
    [InlineData("ftp://localhost/v1/Patient")]
    [InlineData("not a url")]
    public void Htu_that_is_not_an_absolute_http_URL_normalises_to_null(string input) =>
        Assert.Null(HtuNormaliser.Normalise(input));

    [Fact]
    public void Nonce_is_valid_in_its_bucket_and_the_next_only()
    {
        var time = new ManualTime(DateTimeOffset.Parse("2026-11-25T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var nonces = new DpopNonces(Options.Create(new PitAuthOptions { DPoP = new DpopOptions { NonceBucketSeconds = 300 } }), time);
        var nonce = nonces.Create("api");
        Assert.True(nonces.IsValid(nonce, "api"));
        Assert.False(nonces.IsValid(nonce, "token"));
        time.Now = time.Now.AddSeconds(300);
        Assert.True(nonces.IsValid(nonce, "api"));
        time.Now = time.Now.AddSeconds(300);
        Assert.False(nonces.IsValid(nonce, "api"));
    }

    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
