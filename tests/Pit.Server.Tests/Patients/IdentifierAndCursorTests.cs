using Pit.Server.Patients;
using Pit.Server.Storage;
using Pit.Server.Tests.Infrastructure;

namespace Pit.Server.Tests.Patients;

public sealed class IdentifierAndCursorTests
{
    [Fact]
    public void Individual_numbers_decide_the_century_of_a_fodselsnummer()
    {
        // Born 2005 needs an individual number 500-999; with 000-499 the same digits mean 1905.
        var y2005 = TestPatients.FromParts(29, 2, 4, 600);
        Assert.Null(NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, y2005, allowSynthetic: false));
        var y1904 = TestPatients.FromParts(29, 2, 4, 100);
        Assert.Null(NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, y1904, allowSynthetic: false));
        var y1905 = TestPatients.FromParts(29, 2, 5, 100);
        Assert.Contains("not a valid date", NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, y1905, allowSynthetic: false));
    }

    [Fact]
    public void The_29th_of_February_exists_in_2000_but_not_in_1900()
    {
        // The same digits 290200: individual 000-499 means 1900 (divisible by 100, not a leap year), 500-999 means
        // 2000 (divisible by 400, a leap year). A leap-year rule of "every fourth year" accepts both.
        var y1900 = TestPatients.FromParts(29, 2, 0, 100);
        Assert.Contains("not a valid date", NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, y1900, allowSynthetic: false));
        var y2000 = TestPatients.FromParts(29, 2, 0, 600);
        Assert.Null(NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, y2000, allowSynthetic: false));
    }

    [Fact]
    public void A_d_number_must_have_40_added_to_its_day_and_a_fodselsnummer_must_not()
    {
        var dnr = TestPatients.Fnr(new DateOnly(1990, 6, 30), 321, monthOffset: 0, dNumber: true);
        Assert.Null(NorwegianIdentifiers.Check(NorwegianIdentifiers.Dnr, dnr, allowSynthetic: false));
        Assert.NotNull(NorwegianIdentifiers.Check(NorwegianIdentifiers.Fnr, dnr, allowSynthetic: false));
        var fnr = TestPatients.Fnr(new DateOnly(1990, 6, 30), 321, monthOffset: 0);
        Assert.NotNull(NorwegianIdentifiers.Check(NorwegianIdentifiers.Dnr, fnr, allowSynthetic: false));
    }

    [Fact]
    public void A_cursor_survives_its_binary_form_exactly()
    {
        var cursor = new SearchCursor(true, 17, 1_700_000_000_000_000, null, new PagePosition(1_700_000_123_456_789, "0123abcd"), "974762501");
        Assert.Equal(cursor, SearchCursor.FromBytes(cursor.ToBytes()));
        var bytes = cursor.ToBytes();
        Assert.Null(SearchCursor.FromBytes(bytes.AsSpan(0, bytes.Length - 1)));
        bytes[0] = 9;
        Assert.Null(SearchCursor.FromBytes(bytes));
    }
}
