/**
 * Step: rate limit. Every request to the MCP endpoint pays before the gateway works for it: a POST
 * takes one token from its key's bucket before its body is read (prepay), so a body that is refused
 * (unparsable, invalid, too large, its envelope), dropped by its client or never sent has been paid
 * for, and a key cannot make the gateway read more bodies than its bucket pays for, however many it
 * sends at once. Once parsed, each JSON-RPC message in the body costs a token of the key's bucket
 * (the first one prepaid) and a tools/call one of its tool's bucket too: requests, notifications
 * and responses alike; when those cannot be taken the request is refused (429) and its prepaid
 * token stays taken (its Retry-After is when the whole request fits again, that token included). A GET stream and a DELETE take one token each (and a GET counts against the
 * key's cap on open streams). A request refused before it prepaid (a session id or an event id the
 * gateway did not issue, a protocol version that is none) takes one too (failure.ts's
 * chargedWithPeekedId). While a key's bucket is known to be empty, its requests are refused without
 * asking the store (admission.ts). A refusal never reaches the upstream.
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
import { KeyCounter } from '../ratelimit/key-counter.ts';

export interface RateLimitHooks {
  /** A store failure was decided by `on_store_error` (for logs and metrics). */
  onFallback?(ctx: RequestContext, decision: Decision): void;
  onRefused?(ctx: RequestContext): void;
}

const RETRY_SOON = Object.freeze({ 'retry-after': '1' });

export function createRateLimit(
  store: RateLimitStore,
  streams: StreamCounter,
  hooks: RateLimitHooks = {},
  now: () => number = () => performance.now(),
): RateLimitStep {
  const admission = createAdmission(now);
  const inFlight = new KeyCounter();

  function refuse(ctx: RequestContext, decision: Decision): never {
    const error = rateLimitError(decision);
    ctx.reason = error.code;
    ctx.decision = 'rate_limited';
    hooks.onRefused?.(ctx);
    throw error;
  }

  /** `retry`: the costs of the whole request, which a refusal's wait is measured for. */
  function settle(ctx: RequestContext, retry: Plan['costs'], decision: Decision): void {
    if (decision.fallback !== undefined) {
      ctx.rateLimitFallback = decision.reason;
      hooks.onFallback?.(ctx, decision);
    }
    if (!decision.allowed) {
      const limits = ctx.principal?.limits;
      if (limits !== undefined) admission.learn(limits, decision, costAt(retry, 0));
      refuse(ctx, decision);
    }
  }

  /**
   * Takes `plan`; `whole` is the request's whole plan when part of it was prepaid, so that a refusal
   * says when the request can be sent again (its prepay included), not when the rest would fit.
   */
  function take(ctx: RequestContext, plan: Plan, whole: Plan = plan): void | Promise<void> {
    const decision = store.consume(plan.buckets, plan.costs, whole.costs);
    if (decision instanceof Promise) return decision.then((d) => settle(ctx, whole.costs, d));
    settle(ctx, whole.costs, decision);
  }

  /** One token of the key's bucket; refused without the store while it is known to be empty. */
  function payOne(ctx: RequestContext): void | Promise<void> {
    const limits = ctx.principal?.limits;
    if (limits === undefined) return;
    const known = admission.refused(limits);
    // The body is not read (but for the bounded peek for its id): the answer closes the connection
    // rather than drain it (respond.ts).
    if (known !== undefined) refuse(ctx, known);
    return take(ctx, limits.plan());
  }

  return {
    prepay: payOne,
    consume(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined || ctx.messages === undefined) return;
      const whole = limits.planMessages(ctx.messages);
      const rest = afterPrepaid(whole);
      return rest === undefined ? undefined : take(ctx, rest, whole);
    },
    chargeRefused: payOne,
    enterUpstream(ctx) {
      const limits = ctx.principal?.limits;
      if (limits === undefined) return undefined;
      if (!inFlight.enter(limits.id, limits.maxInFlight)) {
        ctx.reason = 'ERR_TOO_MANY_IN_FLIGHT';
        ctx.decision = 'rate_limited';
        hooks.onRefused?.(ctx);
        throw new GatewayError('ERR_TOO_MANY_IN_FLIGHT', { headers: RETRY_SOON });
      }
      return limits.id;
    },
    leaveUpstream(id) {
      inFlight.leave(id);
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

/**
 * What a POST's messages cost beyond the token it prepaid on its key's bucket (the plan's first):
 * nothing for one message without a tool bucket (no second call to the store), else the plan with
 * one token less there (a tool's bucket keeps the key's beside it, at no cost, so that a refusal
 * names every policy the request is under). A plan that can never fit, some bucket's cost above its
 * capacity, is asked whole: the store refuses it as too large for the bucket, not for the time.
 */
export function afterPrepaid(plan: Plan): Plan | undefined {
  const { buckets, costs } = plan;
  for (let i = 0; i < buckets.length; i++)
    if (costAt(costs, i) > (buckets[i] as Plan['buckets'][number]).capacity) return plan;
  const key = costAt(costs, 0) - 1;
  if (buckets.length === 1) return key > 0 ? { buckets, costs: key } : undefined;
  const each = buckets.map((_, i) => costAt(costs, i));
  each[0] = key;
  return { buckets, costs: each };
}
