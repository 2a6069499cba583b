import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rateLimitError, rateLimitHeaders, rateLimitMessage } from '../../../src/ratelimit/headers.ts';
import { createMemoryStore } from '../../../src/ratelimit/memory.ts';
import { compileLimits } from '../../../src/ratelimit/policy.ts';
import { fallbackDecision } from '../../../src/ratelimit/store.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

const defaults = { capacity: 60, refill_per_second: 1, max_streams: 10 };

function setup(key: Parameters<typeof compileLimits>[2] = undefined) {
  let t = 0;
  const store = createMemoryStore({ now: () => t, sweepIntervalMs: 0 });
  return { store, limits: compileLimits('key:a', defaults, key), advance: (ms: number) => (t += ms) };
}

describe('rate limit headers', () => {
  it('an allowed request: the policy, what is left and when the bucket is full', () => {
    const { store, limits } = setup();
    const d = store.consume(limits.plan().buckets, 1);
    assert.deepEqual(rateLimitHeaders(d), {
      'ratelimit-policy': '"default";q=60;w=60',
      ratelimit: '"default";r=59;t=1',
    });
  });

  it('a refusal: 429 with Retry-After rounded up, t naming the same moment, and an actionable message', () => {
    const { store, limits, advance } = setup({ capacity: 2, refill_per_second: 0.4 });
    const buckets = limits.plan().buckets;
    store.consume(buckets, 1);
    store.consume(buckets, 1);
    advance(100);
    const d = store.consume(buckets, 1);
    assert.equal(d.allowed, false);
    assert.equal(d.retryAfterMs, 2400);
    assert.deepEqual(rateLimitHeaders(d), {
      'ratelimit-policy': '"default";q=2;w=5',
      ratelimit: '"default";r=0;t=3',
      'retry-after': '3',
    });
    assert.equal(rateLimitMessage(d), 'rate limit exceeded for this key; retry after 3 s');
    const err = rateLimitError(d);
    assert.ok(isGatewayError(err));
    assert.equal(err.code, 'ERR_RATE_LIMITED');
    assert.equal(err.status, 429);
    assert.equal(err.rpcCode, -32029);
    assert.equal(err.message, 'rate limit exceeded for this key; retry after 3 s');
    assert.equal(err.headers?.['retry-after'], '3');
  });

  it('a tool bucket refusal names the tool limit and lists both policies', () => {
    const { store, limits } = setup({ tools: { 'search_*': { capacity: 1, refill_per_second: 0.0167 } } });
    const plan = limits.plan('search_web');
    store.consume(plan.buckets, 1);
    const d = store.consume(plan.buckets, 1);
    assert.deepEqual(rateLimitHeaders(d), {
      'ratelimit-policy': '"default";q=60;w=60, "tool:search_*";q=1;w=60',
      ratelimit: '"tool:search_*";r=0;t=60',
      'retry-after': '60',
    });
    assert.equal(
      rateLimitMessage(d),
      'rate limit exceeded for this key\'s calls to tools matching "search_*"; retry after 60 s',
    );
  });

  it('a refusal that no wait can cure has no Retry-After and says why', () => {
    const quota = setup({ capacity: 1, refill_per_second: 0 });
    const buckets = quota.limits.plan().buckets;
    quota.store.consume(buckets, 1);
    const used = quota.store.consume(buckets, 1);
    assert.deepEqual(rateLimitHeaders(used), {
      'ratelimit-policy': '"default";q=1',
      ratelimit: '"default";r=0',
    });
    assert.equal(
      rateLimitMessage(used),
      'rate limit exceeded for this key; the quota is used up and does not refill',
    );

    const small = setup({ capacity: 3 });
    const batch = small.store.consume(small.limits.plan().buckets, 4);
    assert.equal(batch.allowed, false);
    assert.equal(rateLimitHeaders(batch)['retry-after'], undefined);
    assert.equal(
      rateLimitMessage(batch),
      'rate limit exceeded for this key; a batch may hold at most 3 such requests, send fewer at once',
    );
  });

  it('a store failure: deny answers 503 with Retry-After 1; allow adds no header', () => {
    const buckets = compileLimits('key:a', defaults).plan().buckets;
    const deny = fallbackDecision(buckets, 'deny', 'store_unavailable');
    assert.deepEqual(rateLimitHeaders(deny), { 'retry-after': '1' });
    const err = rateLimitError(deny);
    assert.equal(err.code, 'ERR_RATE_LIMIT_STORE');
    assert.equal(err.status, 503);
    assert.deepEqual(rateLimitHeaders(fallbackDecision(buckets, 'allow', 'store_timeout')), {});
  });

  it('escapes policy names as Structured Fields strings', () => {
    const { store, limits } = setup({ tools: { 'we"ird\\*': { capacity: 1, refill_per_second: 1 } } });
    const d = store.consume(limits.plan('we"ird\\x').buckets, 1);
    assert.equal(
      rateLimitHeaders(d)['ratelimit-policy'],
      '"default";q=60;w=60, "tool:we\\"ird\\\\*";q=1;w=1',
    );
  });
});
