/**
 * The Redis store against a real redis-server: the same decisions as the memory store, atomic
 * across two store instances (two replicas), keys that expire on their own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../helpers/redis-server.ts';
import type { RedisServer } from '../../helpers/redis-server.ts';
import { openRedisStore } from '../../../src/ratelimit/redis.ts';
import type { RedisStore, RedisStoreOptions } from '../../../src/ratelimit/redis.ts';
import { createMemoryStore } from '../../../src/ratelimit/memory.ts';
import { compileLimits } from '../../../src/ratelimit/policy.ts';
import type { BucketSpec, Costs, Decision, RateLimitStore } from '../../../src/ratelimit/store.ts';

let server: RedisServer;
let admin: Redis;
const stores: RedisStore[] = [];
let prefixes = 0;

async function open(options: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
  const store = await openRedisStore({
    url: server.url,
    prefix: `test${++prefixes}:`,
    timeoutMs: 1000,
    onStoreError: 'deny',
    reconnectMaxDelayMs: 100,
    ...options,
  });
  stores.push(store);
  assert.equal(await store.ready(10_000), true, 'store connects');
  return store;
}

before(async () => {
  server = await startRedisServer();
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
});

after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  admin.disconnect();
  await server?.close();
});

/** Slow refill: nothing visible refills while a test runs. */
const SLOW = 0.001;

/** A scenario of key and tool buckets; returns what each decision said. */
async function scenario(store: RateLimitStore) {
  const limits = compileLimits(
    'key:alice',
    { capacity: 5, refill_per_second: SLOW, max_streams: 10 },
    {
      tools: { 'search_*': { capacity: 2, refill_per_second: SLOW } },
    },
  );
  // Waits in thousands of seconds (the slow rate makes them 1000 s a token), so that the few
  // milliseconds a test takes cannot tip a rounding.
  const seen: { allowed: boolean; index: number; remaining: number; retryKs: number; resetKs: number }[] = [];
  const step = async (buckets: readonly BucketSpec[], costs: Costs) => {
    const d: Decision = await store.consume(buckets, costs);
    assert.equal(d.fallback, undefined);
    seen.push({
      allowed: d.allowed,
      index: d.index,
      remaining: d.remaining,
      retryKs: Math.round(d.retryAfterMs / 1e6),
      resetKs: Math.round(d.resetMs / 1e6),
    });
  };
  const search = limits.plan('search_web').buckets;
  const plain = limits.plan().buckets;
  for (let i = 0; i < 3; i++) await step(search, 1);
  for (let i = 0; i < 4; i++) await step(plain, 1);
  await step(search, [2, 1]);
  await step(plain, 6);
  return seen;
}

describe('redis store', () => {
  it('decides exactly like the memory store', async () => {
    const memory = createMemoryStore({ now: () => performance.now(), sweepIntervalMs: 0 });
    const fromMemory = await scenario(memory);
    const fromRedis = await scenario(await open());
    assert.deepEqual(fromRedis, fromMemory);
    assert.deepEqual(
      fromRedis.map((s) => [s.allowed, s.index, s.remaining, s.retryKs]),
      [
        [true, 1, 1, 0], // tool bucket 2 -> 1, key 5 -> 4
        [true, 1, 0, 0], // tool 1 -> 0, key 4 -> 3
        [false, 1, 0, 1], // the tool bucket refuses; the key bucket keeps its 3
        [true, 0, 2, 0],
        [true, 0, 1, 0],
        [true, 0, 0, 0],
        [false, 0, 0, 1],
        [false, 0, 0, 2], // both short: 2 tokens for the key bucket is the longest wait
        [false, 0, 0, Infinity], // 6 tokens from a bucket of 5: never
      ],
    );
  });

  it('capacity 5 admits 5, refuses the 6th, and passes again after the refill', async () => {
    const store = await open();
    const buckets = compileLimits('key:bob', { capacity: 5, refill_per_second: 5, max_streams: 10 }).plan()
      .buckets;
    // Sent together, so that no refill comes between them.
    const burst = await Promise.all(Array.from({ length: 6 }, () => store.consume(buckets, 1)));
    assert.deepEqual(
      burst.map((d) => d.allowed),
      [true, true, true, true, true, false],
    );
    const refused = burst[5] as Decision;
    assert.equal(refused.remaining, 0);
    assert.ok(
      refused.retryAfterMs > 0 && refused.retryAfterMs <= 200,
      `retryAfterMs ${refused.retryAfterMs}`,
    );
    await sleep(refused.retryAfterMs);
    const again = await store.consume(buckets, 1);
    assert.equal(again.allowed, true);
    assert.equal(again.fallback, undefined);
  });

  it('two stores (two replicas) under concurrent load admit exactly the capacity in total', async () => {
    const prefix = `shared${++prefixes}:`;
    const a = await open({ prefix });
    const b = await open({ prefix });
    const buckets = compileLimits('key:carol', {
      capacity: 50,
      refill_per_second: SLOW,
      max_streams: 10,
    }).plan().buckets;
    const decisions = await Promise.all(
      Array.from({ length: 240 }, (_, i) => (i % 2 === 0 ? a : b).consume(buckets, 1)),
    );
    assert.ok(decisions.every((d) => d.fallback === undefined));
    const admitted = decisions.filter((d) => d.allowed);
    assert.equal(admitted.length, 50);
    // Atomic: every admitted decision saw a different bucket level.
    assert.deepEqual(
      admitted.map((d) => d.remaining).sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it('a refusing tool bucket leaves the key bucket alone, across replicas too', async () => {
    const prefix = `shared${++prefixes}:`;
    const a = await open({ prefix });
    const b = await open({ prefix });
    const limits = compileLimits(
      'key:dave',
      { capacity: 3, refill_per_second: SLOW, max_streams: 10 },
      {
        tools: { fetch: { capacity: 1, refill_per_second: SLOW } },
      },
    );
    assert.equal((await a.consume(limits.plan('fetch').buckets, 1)).allowed, true);
    const refused = await b.consume(limits.plan('fetch').buckets, 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.index, 1);
    assert.equal((await b.consume(limits.plan().buckets, 2)).allowed, true, 'the key bucket still holds 2');
  });

  it('sets keys to expire when the bucket would be full again; refusals write nothing', async () => {
    const prefix = `ttl${++prefixes}:`;
    const store = await open({ prefix });
    const buckets = compileLimits('key:erin', { capacity: 5, refill_per_second: 1, max_streams: 10 }).plan()
      .buckets;
    const key = prefix + (buckets[0] as BucketSpec).key;
    await store.consume(buckets, 1);
    const one = await admin.pttl(key);
    assert.ok(one > 0 && one <= 1000, `pttl after one token: ${one}`);
    await store.consume(buckets, 2);
    const three = await admin.pttl(key);
    assert.ok(three > 2000 && three <= 3000, `pttl after three tokens: ${three}`);

    const quota = compileLimits('key:q', { capacity: 5, refill_per_second: 0, max_streams: 10 }).plan()
      .buckets;
    await store.consume(quota, 1);
    assert.equal(
      await admin.pttl(prefix + (quota[0] as BucketSpec).key),
      -1,
      'a bucket that never refills is kept',
    );

    const fresh = compileLimits('key:fresh', { capacity: 5, refill_per_second: 1, max_streams: 10 }).plan()
      .buckets;
    assert.equal((await store.consume(fresh, 6)).allowed, false);
    assert.equal(await admin.exists(prefix + (fresh[0] as BucketSpec).key), 0);
  });

  it('an expired key is a full bucket', async () => {
    const prefix = `exp${++prefixes}:`;
    const store = await open({ prefix });
    const buckets = compileLimits('key:f', { capacity: 2, refill_per_second: 10, max_streams: 10 }).plan()
      .buckets;
    const key = prefix + (buckets[0] as BucketSpec).key;
    await store.consume(buckets, 2);
    const ttl = await admin.pttl(key);
    assert.ok(ttl <= 200, `pttl ${ttl}`);
    if (ttl > 0) await sleep(ttl + 20);
    assert.equal(await admin.exists(key), 0);
    const d = await store.consume(buckets, 1);
    assert.equal(d.allowed, true);
    assert.equal(d.remaining, 1);
  });

  it('survives a flushed script cache (EVALSHA falls back to EVAL)', async () => {
    const store = await open();
    const buckets = compileLimits('key:g', { capacity: 2, refill_per_second: SLOW, max_streams: 10 }).plan()
      .buckets;
    assert.equal((await store.consume(buckets, 1)).remaining, 1);
    await admin.script('FLUSH');
    const d = await store.consume(buckets, 1);
    assert.equal(d.fallback, undefined);
    assert.equal(d.remaining, 0);
  });
});
