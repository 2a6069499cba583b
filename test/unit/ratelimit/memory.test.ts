import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryStore } from '../../../src/ratelimit/memory.ts';
import type { BucketSpec } from '../../../src/ratelimit/store.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const spec = (key: string, capacity: number, refillPerSecond: number, tool?: string): BucketSpec => ({
  key,
  name: tool === undefined ? 'default' : `tool:${tool}`,
  tool,
  capacity,
  refillPerSecond,
});

describe('memory store', () => {
  it('capacity 5 admits 5 and refuses the 6th with retry information', () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now, sweepIntervalMs: 0 });
    const buckets = [spec('{alice}', 5, 0.5)];
    const remaining: number[] = [];
    for (let i = 0; i < 5; i++) {
      const d = store.consume(buckets, 1);
      assert.equal(d.allowed, true);
      remaining.push(d.remaining);
    }
    assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
    const refused = store.consume(buckets, 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.remaining, 0);
    assert.equal(refused.retryAfterMs, 2000);
    assert.equal(refused.resetMs, 10_000);
    assert.equal(refused.index, 0);
    assert.equal(refused.buckets, buckets);
    assert.equal(refused.fallback, undefined);
  });

  it('passes again once the refill has come, and not before', () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now, sweepIntervalMs: 0 });
    const buckets = [spec('{bob}', 2, 1)];
    store.consume(buckets, 1);
    store.consume(buckets, 1);
    const refused = store.consume(buckets, 1);
    assert.equal(refused.allowed, false);
    c.advance(refused.retryAfterMs - 1);
    assert.equal(store.consume(buckets, 1).allowed, false);
    c.advance(1);
    const again = store.consume(buckets, 1);
    assert.equal(again.allowed, true);
    assert.equal(again.remaining, 0);
  });

  it('keeps keys apart', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0 });
    assert.equal(store.consume([spec('{a}', 1, 1)], 1).allowed, true);
    assert.equal(store.consume([spec('{a}', 1, 1)], 1).allowed, false);
    assert.equal(store.consume([spec('{b}', 1, 1)], 1).allowed, true);
  });

  it('a tool bucket that refuses does not take from the key bucket', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0 });
    const key = spec('{carol}', 5, 0.01);
    const tool = spec('{carol}:tool:search_*', 1, 0.01, 'search_*');
    const call = [key, tool];
    const first = store.consume(call, 1);
    assert.equal(first.allowed, true);
    assert.equal(first.index, 1, 'reports the bucket with the fewest tokens left');
    assert.equal(first.remaining, 0);
    const second = store.consume(call, 1);
    assert.equal(second.allowed, false);
    assert.equal(second.index, 1, 'the tool bucket refused');
    // The key bucket still holds 4: four other requests pass, the fifth does not.
    for (let i = 3; i >= 0; i--) assert.equal(store.consume([key], 1).remaining, i);
    assert.equal(store.consume([key], 1).allowed, false);
  });

  it('a key bucket that refuses does not take from the tool bucket', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0 });
    const key = spec('{dave}', 1, 0.01);
    const tool = spec('{dave}:tool:x', 3, 0.01, 'x');
    assert.equal(store.consume([key], 1).allowed, true);
    const refused = store.consume([key, tool], 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.index, 0);
    // The tool bucket is untouched: it still has 3.
    assert.equal(store.consume([tool], 3).allowed, true);
  });

  it('takes a cost per bucket (a batch) all or nothing', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0 });
    const key = spec('{erin}', 10, 0.01);
    const tool = spec('{erin}:tool:x', 2, 0.01, 'x');
    const refused = store.consume([key, tool], [4, 3]);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, Infinity, 'a batch bigger than the tool bucket can never pass');
    const allowed = store.consume([key, tool], [4, 2]);
    assert.equal(allowed.allowed, true);
    assert.equal(
      store.consume([key], 6).allowed,
      true,
      'the key bucket lost only the 4 of the allowed batch',
    );
  });

  it('reports the longest wait when several buckets are short', () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now, sweepIntervalMs: 0 });
    const key = spec('{f}', 1, 1); // 1 s per token
    const tool = spec('{f}:tool:x', 1, 0.1, 'x'); // 10 s per token
    store.consume([key, tool], 1);
    const refused = store.consume([key, tool], 1);
    assert.equal(refused.index, 1);
    assert.equal(refused.retryAfterMs, 10_000);
  });

  it('drops buckets that are full again, so memory stays bounded', () => {
    const c = clock();
    const store = createMemoryStore({ now: c.now, sweepIntervalMs: 0 });
    for (let i = 0; i < 100; i++) store.consume([spec(`{k${i}}`, 2, 1)], 1);
    assert.equal(store.size, 100);
    c.advance(999);
    assert.equal(store.sweep(), 100);
    c.advance(1);
    assert.equal(store.sweep(), 0);
    // A refusal stores nothing new.
    store.consume([spec('{z}', 1, 1)], 5);
    assert.equal(store.size, 0);
  });

  it('never holds more than maxEntries buckets', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0, maxEntries: 50 });
    for (let i = 0; i < 1000; i++) store.consume([spec(`{k${i}}`, 5, 0.001), spec(`{k${i}}:t`, 5, 0.001)], 1);
    assert.ok(store.size <= 50, `size ${store.size}`);
    assert.ok(store.size >= 40);
  });

  it('close() stops the sweep timer and drops every bucket', async () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 10 });
    store.consume([spec('{a}', 1, 1)], 1);
    await store.close();
    assert.equal(store.size, 0);
  });

  it('refuses an empty bucket list as a programming error', () => {
    const store = createMemoryStore({ now: clock().now, sweepIntervalMs: 0 });
    assert.throws(() => store.consume([], 1), TypeError);
  });
});
