using System.Globalization;
using Hl7.Fhir.Model;

namespace Pit.Server.Fhir;

/// <summary>Builds the OperationOutcomes the server answers with.</summary>
internal static class Outcomes
{
    /// <summary>The most issues an answer lists; past it one more issue says how many were left out.</summary>
    public const int MaxIssues = 100;

    /// <summary>
    /// The longest diagnostics or expression text an issue carries. Parse messages quote the client's element names,
    /// so without it one huge name would come back at least once, and the answer could outgrow the request.
    /// </summary>
    public const int MaxTextLength = 500;

    /// <summary>One error issue.</summary>
    public static OperationOutcome Error(OperationOutcome.IssueType code, string diagnostics, params string[] expression) =>
        new() { Issue = [Issue(OperationOutcome.IssueSeverity.Error, code, diagnostics, expression)] };

    /// <summary>One informational issue.</summary>
    public static OperationOutcome Information(string diagnostics, params string[] expression) =>
        new() { Issue = [Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational, diagnostics, expression)] };

    /// <summary>An issue; <paramref name="expression"/> names where it is.</summary>
    public static OperationOutcome.IssueComponent Issue(
        OperationOutcome.IssueSeverity severity, OperationOutcome.IssueType code, string diagnostics, params string[] expression)
    {
        var issue = new OperationOutcome.IssueComponent { Severity = severity, Code = code, Diagnostics = diagnostics };
        if (expression.Length > 0)
        {
            issue.Expression = expression;
        }

        return issue;
    }

    /// <summary>
    /// <paramref name="outcome"/> as sent: at most <see cref="MaxIssues"/> issues, each text at most
    /// <see cref="MaxTextLength"/> characters, and one last issue counting those left out. A body with thousands of
    /// problems thus gets an answer of bounded size (a few tens of KB at most) rather than one larger than itself.
    /// </summary>
    public static OperationOutcome Capped(OperationOutcome outcome)
    {
        var issues = outcome.Issue;
        var omitted = issues.Count - MaxIssues;
        if (omitted > 0)
        {
            issues.RemoveRange(MaxIssues, omitted);
        }

        foreach (var issue in issues)
        {
            issue.Diagnostics = Shortened(issue.Diagnostics);
            if (issue.Expression.Any(e => e is { Length: > MaxTextLength }))
            {
                issue.Expression = [.. issue.Expression.Select(Shortened)];
            }
        }

        if (omitted > 0)
        {
            var more = omitted.ToString("N0", CultureInfo.InvariantCulture);
            issues.Add(Issue(OperationOutcome.IssueSeverity.Information, OperationOutcome.IssueType.Informational,
                $"…and {more} more problem{(omitted == 1 ? "" : "s")} not listed (an answer lists the first {MaxIssues})."));
        }

        return outcome;
    }

    private static string? Shortened(string? text) =>
        text is { Length: > MaxTextLength } ? string.Concat(text.AsSpan(0, MaxTextLength - 1), "…") : text;
}
