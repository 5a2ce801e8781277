using Pit.Security;

namespace Pit.Client.Tests;

/// <summary>The one implementation of fødselsnummer rules that the server, <c>pit fnr</c> and the tests share.</summary>
public sealed class NorwegianIdentityNumbersTests
{
    [Theory]
    [InlineData(1854, 1, 1)]
    [InlineData(1899, 12, 31)]
    [InlineData(1900, 2, 28)]
    [InlineData(1985, 3, 14)]
    [InlineData(2000, 2, 29)]
    [InlineData(2024, 2, 29)]
    [InlineData(2039, 12, 31)]
    public void A_synthetic_number_for_any_encodable_birth_date_passes_the_servers_check_only_where_synthetic_numbers_are_allowed(int year, int month, int day)
    {
        for (var individual = 0; individual < 1000; individual += 97)
        {
            var number = NorwegianIdentityNumbers.Synthetic(new DateOnly(year, month, day), individual);

            Assert.Null(NorwegianIdentityNumbers.Check(number, dNumber: false, allowSynthetic: true));
            Assert.Equal("synthetic test numbers are not accepted here.", NorwegianIdentityNumbers.Check(number, dNumber: false, allowSynthetic: false));
            Assert.Equal(month + 80, int.Parse(number.AsSpan(2, 2), provider: null));
        }
    }

    [Fact]
    public void A_changed_digit_breaks_the_control_digits()
    {
        var number = NorwegianIdentityNumbers.Synthetic(new DateOnly(1985, 3, 14));
        var changed = number[..8] + (char)('0' + ((number[8] - '0' + 1) % 10)) + number[9..];

        Assert.Equal("the control digits do not match.", NorwegianIdentityNumbers.Check(changed, dNumber: false, allowSynthetic: true));
    }

    [Fact]
    public void Birth_years_the_numbers_cannot_encode_are_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => NorwegianIdentityNumbers.Synthetic(new DateOnly(2040, 1, 1)));
}
