/**
 * The outcome of a request as the audit line and the metrics report it. The request-level decision
 * wins over a call's when it is worse (a call the policy allowed but the upstream then failed is an
 * `upstream_error`); for a single message the call's own denial shows through when the pipeline left
 * the request at `allow`.
 */
import type { CallRecord, Decision, RequestContext } from '../pipeline/context.ts';
import type { ErrorCode } from '../jsonrpc/errors.ts';

/** The request's decision: the context's, or its single call's when that is worse. */
export function requestDecision(ctx: RequestContext): Decision {
  if (ctx.decision !== 'allow' || ctx.batch) return ctx.decision;
  const call = ctx.calls.length === 1 ? ctx.calls[0] : undefined;
  return call === undefined ? ctx.decision : call.decision;
}

export function requestReason(ctx: RequestContext): ErrorCode | undefined {
  if (ctx.reason !== undefined || ctx.batch) return ctx.reason;
  const call = ctx.calls.length === 1 ? ctx.calls[0] : undefined;
  return call?.reason;
}

/** One call's outcome: its own denial, else the request's (a refused batch refuses its calls). */
export function callDecision(ctx: RequestContext, call: CallRecord): Decision {
  return call.decision !== 'allow' ? call.decision : ctx.decision;
}
