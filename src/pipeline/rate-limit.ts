/**
 * Step: rate limit. Each JSON-RPC request in the body takes a token from its key's bucket (and a
 * tools/call from its tool's bucket too); notifications and responses take none. GET streams take
 * none but count against the key's cap on open streams. A refusal never reaches the upstream.
 */
import type { RateLimitStep } from './ports.ts';
import type { RateLimitStore, Decision } from '../ratelimit/store.ts';
import type { StreamCounter } from '../ratelimit/streams.ts';
import { rateLimitError } from '../ratelimit/headers.ts';
import { GatewayError } from '../jsonrpc/errors.ts';
import type { RequestContext } from './context.ts';

export interface RateLimitHooks {
  /** A store failure was decided by `on_store_error` (for logs and metrics). */
  onFallback?(ctx: RequestContext, decision: Decision): void;
  onRefused?(ctx: RequestContext): void;
}

export function createRateLimit(
  store: RateLimitStore,
  streams: StreamCounter,
  hooks: RateLimitHooks = {},
): RateLimitStep {
  function settle(ctx: RequestContext, decision: Decision): void {
    if (decision.fallback !== undefined) {
      ctx.rateLimitFallback = decision.reason;
      hooks.onFallback?.(ctx, decision);
    }
    if (!decision.allowed) {
      const error = rateLimitError(decision);
      ctx.reason = error.code;
      ctx.decision = 'rate_limited';
      hooks.onRefused?.(ctx);
      throw error;
    }
  }
  return {
    consume(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined || ctx.messages === undefined) return;
      const plan = limits.planMessages(ctx.messages);
      if (plan === undefined) return;
      const decision = store.consume(plan.buckets, plan.costs);
      if (decision instanceof Promise) return decision.then((d) => settle(ctx, d));
      settle(ctx, decision);
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
