/**
 * Step: rate limit. Each JSON-RPC message in the body takes a token from its key's bucket (and a
 * tools/call from its tool's bucket too): requests, notifications and responses alike, so every POST
 * takes at least one and a key cannot flood the gateway or the upstream with free messages. A body
 * that fails to parse or is invalid, or is refused for its envelope or its size, and any request
 * refused for a session id the gateway did not issue, takes one token from the key's bucket too:
 * the gateway did the work of reading it (failure.ts's charged). While a key's bucket is known to
 * be empty, its POSTs are refused before their body is read (admission.ts). A DELETE takes one
 * token (handler.ts). GET streams take no token but count against the key's cap on open streams. A
 * refusal never reaches the upstream.
 */
import type { RateLimitStep } from './ports.ts';
import type { RateLimitStore, Decision } from '../ratelimit/store.ts';
import { costAt } from '../ratelimit/store.ts';
import type { StreamCounter } from '../ratelimit/streams.ts';
import type { Plan } from '../ratelimit/policy.ts';
import { rateLimitError } from '../ratelimit/headers.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { RequestContext } from './context.ts';
import { createAdmission } from './admission.ts';

export interface RateLimitHooks {
  /** A store failure was decided by `on_store_error` (for logs and metrics). */
  onFallback?(ctx: RequestContext, decision: Decision): void;
  onRefused?(ctx: RequestContext): void;
}

export function createRateLimit(
  store: RateLimitStore,
  streams: StreamCounter,
  hooks: RateLimitHooks = {},
  now: () => number = () => performance.now(),
): RateLimitStep {
  const admission = createAdmission(now);

  function refuse(ctx: RequestContext, decision: Decision): never {
    const error = rateLimitError(decision);
    ctx.reason = error.code;
    ctx.decision = 'rate_limited';
    hooks.onRefused?.(ctx);
    throw error;
  }

  function settle(ctx: RequestContext, plan: Plan, decision: Decision): void {
    if (decision.fallback !== undefined) {
      ctx.rateLimitFallback = decision.reason;
      hooks.onFallback?.(ctx, decision);
    }
    if (!decision.allowed) {
      const limits = ctx.principal?.limits;
      if (limits !== undefined) admission.learn(limits, decision, costAt(plan.costs, 0));
      refuse(ctx, decision);
    }
  }

  function take(ctx: RequestContext, plan: Plan): void | Promise<void> {
    const decision = store.consume(plan.buckets, plan.costs);
    if (decision instanceof Promise) return decision.then((d) => settle(ctx, plan, d));
    settle(ctx, plan, decision);
  }

  return {
    admit(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined) return;
      const known = admission.refused(limits);
      if (known === undefined) return;
      // The body is never read: the answer closes the connection rather than drain it (respond.ts).
      refuse(ctx, known);
    },
    consume(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined || ctx.messages === undefined) return;
      return take(ctx, limits.planMessages(ctx.messages));
    },
    chargeRefused(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined) return;
      return take(ctx, limits.plan());
    },
    openStream(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined) return noop;
      const release = streams.acquire(limits.id, limits.maxStreams);
      if (release === undefined) {
        ctx.reason = 'ERR_TOO_MANY_STREAMS';
        ctx.decision = 'rate_limited';
        hooks.onRefused?.(ctx);
        throw new GatewayError('ERR_TOO_MANY_STREAMS');
      }
      return release;
    },
  };
}

const noop = () => {};
