/**
 * Micro-benchmark of one rate-limit decision (not part of the tests):
 *   - the memory store, one key bucket and key + tool bucket, over many keys (target: < 10 µs median);
 *   - the Redis store's round trip against a real redis-server (started here, or REDIS_URL).
 *
 *   node bench/ratelimit-micro.ts [--ops 200000] [--redis-ops 5000]
 */
import { parseArgs } from 'node:util';
import { createMemoryStore } from '../src/ratelimit/memory.ts';
import { openRedisStore } from '../src/ratelimit/redis.ts';
import { compileLimits } from '../src/ratelimit/policy.ts';
import type { Limits } from '../src/ratelimit/policy.ts';
import type { RateLimitStore } from '../src/ratelimit/store.ts';
import { startRedisServer } from '../test/helpers/redis-server.ts';
import type { RedisServer } from '../test/helpers/redis-server.ts';

const { values } = parseArgs({
  options: { ops: { type: 'string', default: '200000' }, 'redis-ops': { type: 'string', default: '5000' } },
});
const OPS = Number(values.ops);
const REDIS_OPS = Number(values['redis-ops']);
const BATCH = 100; // ops per timed sample: the timer's own cost stays out of the figures

const defaults = { capacity: 1e9, refill_per_second: 1e6, max_streams: 10 };
const keys: Limits[] = Array.from({ length: 1000 }, (_, i) =>
  compileLimits(`key:k${i}`, defaults, { tools: { 'search_*': { capacity: 1e9, refill_per_second: 1e6 } } }),
);

function percentiles(samples: number[]) {
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] as number;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);

function benchMemory(label: string, tool: string | undefined): void {
  const store = createMemoryStore({ now: () => performance.now(), sweepIntervalMs: 0 });
  const plans = keys.map((k) => k.plan(tool));
  // Warm up (JIT), then time batches of BATCH decisions.
  for (let i = 0; i < 50_000; i++) store.consume(plans[i % plans.length]!.buckets, 1);
  const samples: number[] = [];
  let denied = 0;
  for (let done = 0; done < OPS; done += BATCH) {
    const start = process.hrtime.bigint();
    for (let j = 0; j < BATCH; j++) {
      const plan = plans[(done + j) % plans.length]!;
      if (!store.consume(plan.buckets, plan.costs).allowed) denied++;
    }
    samples.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  const p = percentiles(samples);
  console.log(
    `memory, ${label.padEnd(22)} p50 ${fmt(p.p50)}  p90 ${fmt(p.p90)}  p99 ${fmt(p.p99)}  (${OPS} decisions, ${denied} refused)`,
  );
}

async function benchRedis(store: RateLimitStore, label: string, tool: string | undefined): Promise<void> {
  const plans = keys.map((k) => k.plan(tool));
  for (let i = 0; i < 500; i++) await store.consume(plans[i % plans.length]!.buckets, 1);
  const samples: number[] = [];
  let fallbacks = 0;
  for (let i = 0; i < REDIS_OPS; i++) {
    const plan = plans[i % plans.length]!;
    const start = process.hrtime.bigint();
    const d = await store.consume(plan.buckets, plan.costs);
    samples.push(Number(process.hrtime.bigint() - start));
    if (d.fallback) fallbacks++;
  }
  const p = percentiles(samples);
  console.log(
    `redis,  ${label.padEnd(22)} p50 ${fmt(p.p50)}  p90 ${fmt(p.p90)}  p99 ${fmt(p.p99)}  (${REDIS_OPS} sequential round trips, ${fallbacks} fallbacks)`,
  );
  // Throughput with many decisions in flight (the round trips pipeline on one connection).
  const start = performance.now();
  await Promise.all(
    Array.from({ length: REDIS_OPS }, (_, i) => store.consume(plans[i % plans.length]!.buckets, 1)),
  );
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `redis,  ${label.padEnd(22)} ${Math.round(REDIS_OPS / seconds)} decisions/s with ${REDIS_OPS} in flight`,
  );
}

console.log(`node ${process.version}, ${process.platform}/${process.arch}`);
benchMemory('key bucket', undefined);
benchMemory('key + tool bucket', 'search_web');

let server: RedisServer | undefined;
let url = process.env.REDIS_URL;
if (!url) {
  server = await startRedisServer();
  url = server.url;
}
const store = await openRedisStore({ url, prefix: 'bench:', timeoutMs: 1000, onStoreError: 'deny' });
try {
  if (!(await store.ready(5000))) throw new Error('Redis did not connect');
  await benchRedis(store, 'key bucket', undefined);
  await benchRedis(store, 'key + tool bucket', 'search_web');
} finally {
  await store.close();
  await server?.close();
}
