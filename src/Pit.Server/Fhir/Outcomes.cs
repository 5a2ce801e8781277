using Hl7.Fhir.Model;

namespace Pit.Server.Fhir;

/// <summary>Builds the OperationOutcomes the server answers with.</summary>
internal static class Outcomes
{
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
}
