using System.Security.Claims;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;

namespace Pit.Server.Auth;

/// <summary>Requires one HelseID scope; <c>scope</c> may be a JSON array (several claims) or a space-separated string.</summary>
internal sealed class ScopeRequirement(string scope) : AuthorizationHandler<ScopeRequirement>, IAuthorizationRequirement
{
    public string Scope { get; } = scope;

    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, ScopeRequirement requirement)
    {
        foreach (var claim in context.User.FindAll(HelseIdClaims.Scope))
        {
            if (claim.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(requirement.Scope, StringComparer.Ordinal))
            {
                context.Succeed(requirement);
                return Task.CompletedTask;
            }
        }

        context.Fail(new AuthorizationFailureReason(this, $"missing scope {requirement.Scope}"));
        return Task.CompletedTask;
    }
}

/// <summary>
/// Requires exactly one <c>orgnr_parent</c> claim holding a valid organisation number (the tenant); <c>orgnr_child</c>
/// and <c>orgnr_supplier</c> are optional, but when present each must be one valid organisation number too, since
/// they are recorded with what the caller submits.
/// </summary>
internal sealed class OrganisationRequirement : AuthorizationHandler<OrganisationRequirement>, IAuthorizationRequirement
{
    /// <summary>The claim that failed, for the refusal's message.</summary>
    internal sealed class Failure(OrganisationRequirement requirement, string claim) : AuthorizationFailureReason(requirement, "invalid " + claim)
    {
        public string Claim { get; } = claim;
    }

    protected override Task HandleRequirementAsync(AuthorizationHandlerContext context, OrganisationRequirement requirement)
    {
        var invalid = !IsOneValid(context.User.FindAll(HelseIdClaims.OrgnrParent).ToList(), required: true) ? HelseIdClaims.OrgnrParent
            : !IsOneValid(context.User.FindAll(HelseIdClaims.OrgnrChild).ToList(), required: false) ? HelseIdClaims.OrgnrChild
            : !IsOneValid(context.User.FindAll(HelseIdClaims.OrgnrSupplier).ToList(), required: false) ? HelseIdClaims.OrgnrSupplier
            : null;
        if (invalid is null)
        {
            context.Succeed(requirement);
        }
        else
        {
            context.Fail(new Failure(this, invalid));
        }

        return Task.CompletedTask;
    }

    private static bool IsOneValid(List<Claim> claims, bool required) =>
        claims.Count == 0 ? !required : claims.Count == 1 && OrganisationNumber.IsValid(claims[0].Value);
}

/// <summary>Answers forbidden requests with a DPoP <c>insufficient_scope</c> challenge or an OperationOutcome naming the claim.</summary>
internal sealed class PitAuthorizationResultHandler(DpopProofValidator validator) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler _default = new();

    public Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (!authorizeResult.Forbidden)
        {
            return _default.HandleAsync(next, context, policy, authorizeResult);
        }

        // Handlers that call Fail(reason) are reported through FailureReasons (the requirement is its own handler).
        var failure = authorizeResult.AuthorizationFailure;
        var failed = (failure?.FailedRequirements ?? []).Concat(failure?.FailureReasons.Select(r => r.Handler).OfType<IAuthorizationRequirement>() ?? []).ToList();
        var refusals = context.RequestServices.GetRequiredService<AuthRefusals>();
        if (failed.OfType<ScopeRequirement>().FirstOrDefault() is { } scope)
        {
            refusals.Refused(Telemetry.AuthFailureReasons.InsufficientScope);
            return AuthResponses.InsufficientScope(validator.AlgorithmList, scope.Scope).ExecuteAsync(context);
        }

        if (failed.OfType<OrganisationRequirement>().Any())
        {
            refusals.Refused(Telemetry.AuthFailureReasons.InvalidOrganisation);
            var claim = failure?.FailureReasons.OfType<OrganisationRequirement.Failure>().FirstOrDefault()?.Claim ?? HelseIdClaims.OrgnrParent;
            return AuthResponses.Forbidden(claim == HelseIdClaims.OrgnrParent
                ? $"The access token must carry claim {HelseIdClaims.OrgnrParent} with a valid 9-digit organisation number"
                : $"The access token's claim {claim} must be one valid 9-digit organisation number").ExecuteAsync(context);
        }

        return AuthResponses.Forbidden("The caller is not allowed to do this").ExecuteAsync(context);
    }
}
