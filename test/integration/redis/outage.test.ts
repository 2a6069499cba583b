/**
 * The Redis store when Redis goes away: `on_store_error` decides (deny refuses, allow passes), the
 * decision says it came from the fallback and why, nothing hangs, and the same store instances
 * recover by themselves when Redis comes back on the same port.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { startRedisServer } from '../../helpers/redis-server.ts';
import type { RedisServer } from '../../helpers/redis-server.ts';
import { openRedisStore } from '../../../src/ratelimit/redis.ts';
import type { RedisStore } from '../../../src/ratelimit/redis.ts';
import { compileLimits } from '../../../src/ratelimit/policy.ts';
import { rateLimitError } from '../../../src/ratelimit/headers.ts';
import type { Logger } from '../../../src/log/types.ts';

let server: RedisServer;
let deny: RedisStore;
let allow: RedisStore;
const logged: { level: string; obj: unknown; msg: string | undefined }[] = [];
const logger: Pick<Logger, 'info' | 'warn'> = {
  info: (obj, msg) => logged.push({ level: 'info', obj, msg }),
  warn: (obj, msg) => logged.push({ level: 'warn', obj, msg }),
};

const buckets = compileLimits('key:alice', {
  capacity: 1000,
  refill_per_second: 0.001,
  max_streams: 10,
}).plan().buckets;

before(async () => {
  server = await startRedisServer();
  const options = { url: server.url, prefix: 'outage:', timeoutMs: 300, reconnectMaxDelayMs: 100, logger };
  deny = await openRedisStore({ ...options, onStoreError: 'deny' });
  allow = await openRedisStore({ ...options, onStoreError: 'allow' });
  assert.equal(await deny.ready(10_000), true);
  assert.equal(await allow.ready(10_000), true);
});

after(async () => {
  await deny?.close();
  await allow?.close();
  await server?.close();
});

const FALLBACK_REASONS = ['store_unavailable', 'store_timeout', 'store_error'];

describe('redis store outage', () => {
  it('decides from Redis while it is up', async () => {
    for (const store of [deny, allow]) {
      const d = await store.consume(buckets, 1);
      assert.equal(d.allowed, true);
      assert.equal(d.fallback, undefined);
      assert.equal(d.reason, undefined);
    }
  });

  it('Redis killed: deny refuses and allow passes, both saying it was the fallback', async () => {
    await server.stop('SIGKILL');
    for (let i = 0; i < 3; i++) {
      const denied = await deny.consume(buckets, 1);
      assert.equal(denied.allowed, false);
      assert.equal(denied.fallback, 'deny');
      assert.ok(FALLBACK_REASONS.includes(denied.reason ?? ''), `reason ${denied.reason}`);
      const err = rateLimitError(denied);
      assert.equal(err.code, 'ERR_RATE_LIMIT_STORE');
      assert.equal(err.headers?.['retry-after'], '1');

      const allowed = await allow.consume(buckets, 1);
      assert.equal(allowed.allowed, true);
      assert.equal(allowed.fallback, 'allow');
      assert.ok(FALLBACK_REASONS.includes(allowed.reason ?? ''), `reason ${allowed.reason}`);
    }
    // Once the client has seen the connection drop, the answer is immediate: store_unavailable.
    await waitFor(() => !deny.connected && !allow.connected);
    assert.equal((await deny.consume(buckets, 1)).reason, 'store_unavailable');
    assert.ok(
      logged.some((l) => l.level === 'warn' && l.msg === 'rate limit store unreachable'),
      'the outage is logged',
    );
  });

  it('both recover when Redis returns on the same port, without being recreated', async () => {
    await server.start();
    assert.equal(await deny.ready(10_000), true);
    assert.equal(await allow.ready(10_000), true);
    for (const store of [deny, allow]) {
      const d = await store.consume(buckets, 1);
      assert.equal(d.fallback, undefined);
      assert.equal(d.allowed, true);
      // The restarted Redis saved nothing: a fresh bucket (and the script was loaded again).
      assert.equal(d.remaining, store === deny ? 999 : 998);
    }
  });

  it('Redis frozen: a decision that exceeds the timeout falls back with store_timeout', async () => {
    server.pause();
    try {
      const [denied, allowed] = await Promise.all([deny.consume(buckets, 1), allow.consume(buckets, 1)]);
      assert.equal(denied.allowed, false);
      assert.equal(denied.reason, 'store_timeout');
      assert.equal(allowed.allowed, true);
      assert.equal(allowed.reason, 'store_timeout');
    } finally {
      server.resume();
    }
    await waitFor(async () => (await deny.consume(buckets, 1)).fallback === undefined);
  });

  it('never logs the Redis URL or its password', async () => {
    const closed = await closedPort();
    const before = logged.length;
    const unreachable = await openRedisStore({
      url: `redis://:s3cret-pw@127.0.0.1:${closed}`,
      prefix: 'pw:',
      timeoutMs: 300,
      onStoreError: 'deny',
      reconnectMaxDelayMs: 100,
      logger,
    });
    try {
      await waitFor(() => logged.length > before);
      const d = await unreachable.consume(buckets, 1);
      assert.equal(d.fallback, 'deny');
      assert.equal(d.reason, 'store_unavailable');
    } finally {
      await unreachable.close();
    }
    const text = JSON.stringify(logged.slice(before));
    assert.match(text, /rate limit store error/);
    assert.ok(!text.includes('s3cret-pw'), 'the password is not logged');
    assert.ok(!text.includes('redis://'), 'the URL is not logged');
  });
});

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
    });
  });
}

async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
