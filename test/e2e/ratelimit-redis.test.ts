/**
 * Issue 5 with `backend: redis`, end to end: a real redis-server, two real `mcpgate serve`
 * processes sharing it (together they admit exactly the capacity), and Redis killed mid-test
 * (`on_store_error: deny` answers 503, `allow` passes, both say so in the request's record, and
 * both recover when Redis comes back on the same port).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { startSdkUpstream, receivedWith } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};

interface TestKey {
  readonly secret: string;
  readonly config: Record<string, unknown>;
}

function makeKey(label: string, capacity: number): TestKey {
  const secret = mintKey(randomBytes(32));
  return {
    secret,
    config: {
      label,
      hash: `sha256:${sha256Hex(secret)}`,
      allow: ['*'],
      rate_limit: { capacity, refill_per_second: 0.001 },
    },
  };
}

/**
 * The config as JSON (a subset of YAML). `timeout` is generous: a slow decision on a loaded machine
 * must not turn into a fallback (a killed Redis fails fast anyway: the connection closes).
 */
function configFor(
  upstreamUrl: string,
  redisUrl: string,
  onStoreError: 'deny' | 'allow',
  keys: readonly TestKey[],
  timeout = '1s',
): string {
  return JSON.stringify({
    listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    auth: { session_secret: 'e2e-ratelimit-redis-shared-session-secret' },
    keys: keys.map((k) => k.config),
    rate_limit: { backend: 'redis', redis: { url: redisUrl, timeout }, on_store_error: onStoreError },
  });
}

let nextId = 0;

/** One tools/call of `echo` carrying `message`, with a fresh id (returned for finding its record). */
async function echo(
  url: string,
  key: TestKey,
  message: string,
): Promise<{ id: string; status: number; headers: Headers; body: string }> {
  const id = `req-${++nextId}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${key.secret}` },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'echo', arguments: { message } },
    }),
  });
  return { id, status: res.status, headers: res.headers, body: await res.text() };
}

/** Calls until one is answered 200 (the gateway's Redis connection is up), within `timeoutMs`. */
async function untilPasses(url: string, key: TestKey, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => ((await echo(url, key, 'warm-up')).status === 200 ? true : undefined),
    timeoutMs,
    what,
  );
}

function recordOf(gateway: TestGateway, id: string): Promise<RequestContext> {
  return waitFor(
    () =>
      gateway.finished.find(
        (ctx) =>
          (ctx.messages?.[0] !== undefined && 'id' in ctx.messages[0] && ctx.messages[0].id === id) ||
          // Refused before its body was parsed (it could not prepay): the id its peek found.
          (ctx.messages === undefined && ctx.calls[0]?.rpc_id === id),
      ),
    3000,
    `the record of ${id}`,
  );
}

const FALLBACK_REASONS = ['store_unavailable', 'store_timeout', 'store_error'];

let redis: RedisServer;
let upstream: SdkUpstream;
let dir: string;
before(async () => {
  [redis, upstream, dir] = await Promise.all([
    startRedisServer(),
    startSdkUpstream({ stateless: true, jsonResponse: true }),
    mkdtemp(join(tmpdir(), 'mcpgate-e2e-ratelimit-')),
  ]);
});
after(async () => {
  await upstream?.close();
  await redis?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('two gateway processes sharing one Redis', () => {
  const shared = makeKey('shared', 30);
  const warm = makeKey('warm', 1000);
  const gateways: ServeProcess[] = [];
  before(async () => {
    const path = join(dir, 'shared.yaml');
    await writeFile(path, configFor(upstream.url, redis.url, 'deny', [shared, warm], '5s'));
    gateways.push(...(await Promise.all([startServe(['--config', path]), startServe(['--config', path])])));
    // A decision before the Redis connection is up is a `deny` fallback: wait for both to be up.
    await Promise.all(gateways.map((g, i) => untilPasses(g.url, warm, `gateway ${i} to reach Redis`)));
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
  });

  it('admit exactly the capacity in total under concurrent load', async () => {
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        echo((gateways[i % 2] as ServeProcess).url, shared, `shared-${i}`),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    // Separate buckets would admit 30 per process (60); a shared one admits 30 in all.
    assert.equal(ok.length, 30);
    assert.equal(refused.length, 90);
    assert.equal(receivedWith(upstream, '"shared-'), 30);
    for (const r of refused) {
      // A token comes back every 1000 s, less the time since the bucket was emptied (rounded up):
      // seconds on a loaded machine, where 120 concurrent requests through two gateways take a while.
      const seconds = r.headers.get('retry-after');
      assert.ok(Number(seconds) >= 980 && Number(seconds) <= 1000, `Retry-After ${seconds}`);
      assert.equal(r.headers.get('ratelimit'), `"default";r=0;t=${seconds}`);
      assert.deepEqual(JSON.parse(r.body), {
        jsonrpc: '2.0',
        id: r.id,
        error: { code: -32029, message: `rate limit exceeded for this key; retry after ${seconds} s` },
      });
    }
    for (const g of gateways) assert.equal(g.child.exitCode, null, 'gateway still running');
  });
});

describe('Redis killed mid-test', () => {
  const key = makeKey('outage', 1000);
  let deny: TestGateway;
  let allow: TestGateway;
  before(async () => {
    [deny, allow] = await Promise.all([
      startTestGateway(configFor(upstream.url, redis.url, 'deny', [key])),
      startTestGateway(configFor(upstream.url, redis.url, 'allow', [key])),
    ]);
    await untilPasses(deny.mcpUrl, key, 'the deny gateway to reach Redis');
    // `allow` passes even without Redis: wait until a decision really came from Redis.
    await waitFor(
      async () => {
        const { id, status } = await echo(allow.mcpUrl, key, 'warm-up');
        return status === 200 && (await recordOf(allow, id)).rateLimitFallback === undefined
          ? true
          : undefined;
      },
      10_000,
      'the allow gateway to reach Redis',
    );
  });
  after(async () => {
    await Promise.all([deny?.close(100), allow?.close(100)]);
  });

  it('deny answers 503 and allow passes, both recorded as store fallbacks', async () => {
    await redis.stop('SIGKILL');

    const refused = await echo(deny.mcpUrl, key, 'outage-deny');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('content-type'), 'application/json');
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.deepEqual(JSON.parse(refused.body), {
      jsonrpc: '2.0',
      id: refused.id,
      error: { code: -32603, message: 'rate limit store unavailable; retry after 1 s' },
    });
    assert.equal(receivedWith(upstream, 'outage-deny'), 0);
    const denied = await recordOf(deny, refused.id);
    assert.equal(denied.decision, 'rate_limited');
    assert.equal(denied.reason, 'ERR_RATE_LIMIT_STORE');
    assert.equal(denied.status, 503);
    assert.ok(FALLBACK_REASONS.includes(denied.rateLimitFallback ?? ''), String(denied.rateLimitFallback));

    const passed = await echo(allow.mcpUrl, key, 'outage-allow');
    assert.equal(passed.status, 200);
    assert.match(passed.body, /Echo: outage-allow/);
    assert.equal(receivedWith(upstream, 'outage-allow'), 1);
    const allowed = await recordOf(allow, passed.id);
    assert.equal(allowed.decision, 'allow');
    assert.equal(allowed.reason, undefined);
    assert.ok(FALLBACK_REASONS.includes(allowed.rateLimitFallback ?? ''), String(allowed.rateLimitFallback));
    // Each such decision is on the audit line, as the README says.
    for (const [gateway, ctx, decision] of [
      [deny, denied, 'rate_limited'],
      [allow, allowed, 'allow'],
    ] as const) {
      const line = await waitFor(() => gateway.auditLines.find((l) => l.request_id === ctx.requestId));
      assert.equal(line.decision, decision);
      assert.equal(line.rate_limit_fallback, ctx.rateLimitFallback);
    }
  });

  it('both recover when Redis returns on the same port', async () => {
    assert.equal(redis.running, false);
    await redis.start();
    await untilPasses(deny.mcpUrl, key, 'the deny gateway to recover');
    await waitFor(
      async () => {
        const { id, status } = await echo(allow.mcpUrl, key, 'recovered');
        return status === 200 && (await recordOf(allow, id)).rateLimitFallback === undefined
          ? true
          : undefined;
      },
      10_000,
      'the allow gateway to decide from Redis again',
    );
    // Decisions come from Redis again, not the fallback.
    const after = await echo(deny.mcpUrl, key, 'recovered-deny');
    assert.equal(after.status, 200);
    const record = await recordOf(deny, after.id);
    assert.equal(record.rateLimitFallback, undefined);
    assert.equal(record.decision, 'allow');
  });
});
