/**
 * The wire form of a decision: the RateLimit-Policy and RateLimit fields of the IETF httpapi
 * ratelimit-headers draft (Structured Fields: `"default";q=60;w=60` and `"default";r=0;t=5`),
 * Retry-After in whole seconds rounded up, and a refusal message a model can act on.
 *
 * RateLimit-Policy lists every bucket the request drew on; RateLimit reports the one bucket the
 * decision describes (the draft: the policy with the least remaining). On a refusal `t` and
 * Retry-After name the same moment.
 */
import { GatewayError } from '../jsonrpc/errors.ts';
import type { BucketSpec, Decision } from './store.ts';

export type RateLimitHeaders = Record<string, string>;

const policies = new WeakMap<readonly BucketSpec[], string>();

/** `ratelimit-policy`, `ratelimit` and (on a refusal that can be retried) `retry-after`. */
export function rateLimitHeaders(decision: Decision): RateLimitHeaders {
  if (decision.fallback !== undefined) return decision.allowed ? {} : { 'retry-after': '1' };
  const spec = decision.buckets[decision.index];
  if (spec === undefined) return {};
  const t = decision.allowed ? decision.resetMs : decision.retryAfterMs;
  const reset = Number.isFinite(t) ? `;t=${sfInteger(Math.ceil(t / 1000))}` : '';
  const headers: RateLimitHeaders = {
    'ratelimit-policy': policyField(decision.buckets),
    ratelimit: `${sfString(spec.name)};r=${sfInteger(decision.remaining)}${reset}`,
  };
  if (!decision.allowed && Number.isFinite(decision.retryAfterMs)) {
    headers['retry-after'] = String(retryAfterSeconds(decision));
  }
  return headers;
}

/**
 * Seconds to wait, rounded up, at least 1 (a refusal never says "retry now"), at most MAX_INTEGER (a
 * refill of 1e-22 a second is valid config: String() would spell its wait `1e+22`, not a number of
 * seconds).
 */
export function retryAfterSeconds(decision: Decision): number {
  return Math.min(MAX_INTEGER, Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
}

/**
 * The largest Structured Fields integer (RFC 9651: 15 digits; a parser drops a field holding a
 * longer one). About 31.7 million years in seconds: a wait or a size past it is as good as forever.
 */
const MAX_INTEGER = 999_999_999_999_999;

/** A whole, non-negative number as an sf-integer, capped at MAX_INTEGER. */
function sfInteger(n: number): string {
  return n < MAX_INTEGER ? String(n) : String(MAX_INTEGER);
}

/** The JSON-RPC error message for a refusal. */
export function rateLimitMessage(decision: Decision): string {
  if (decision.fallback !== undefined) return 'rate limit store unavailable; retry after 1 s';
  const spec = decision.buckets[decision.index];
  const scope = spec?.tool === undefined ? 'this key' : `this key's calls to tools matching "${spec.tool}"`;
  if (Number.isFinite(decision.retryAfterMs)) {
    return `rate limit exceeded for ${scope}; retry after ${retryAfterSeconds(decision)} s`;
  }
  if (spec !== undefined && spec.refillPerSecond <= 0) {
    return `rate limit exceeded for ${scope}; the quota is used up and does not refill`;
  }
  return `rate limit exceeded for ${scope}; a batch may hold at most ${Math.floor(spec?.capacity ?? 0)} such requests, send fewer at once`;
}

/** The error a refused decision is answered with: 429 ERR_RATE_LIMITED, or 503 when the store failed. */
export function rateLimitError(decision: Decision): GatewayError {
  const code = decision.fallback === undefined ? 'ERR_RATE_LIMITED' : 'ERR_RATE_LIMIT_STORE';
  return new GatewayError(code, { message: rateLimitMessage(decision), headers: rateLimitHeaders(decision) });
}

/** The RateLimit-Policy field for a bucket list (cached per list: lists are compiled once per key). */
export function policyField(buckets: readonly BucketSpec[]): string {
  let field = policies.get(buckets);
  if (field === undefined) {
    field = buckets.map(policyItem).join(', ');
    policies.set(buckets, field);
  }
  return field;
}

function policyItem(spec: BucketSpec): string {
  const window =
    spec.refillPerSecond > 0 ? `;w=${sfInteger(Math.ceil(spec.capacity / spec.refillPerSecond))}` : '';
  return `${sfString(spec.name)};q=${sfInteger(Math.floor(spec.capacity))}${window}`;
}

/** A Structured Fields sf-string: printable ASCII, with `"` and `\` escaped. */
function sfString(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`;
}
