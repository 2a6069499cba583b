/**
 * Review of 164f377 ("every request pays before the gateway works for it"). Each `defect:` test
 * asserts the promised behaviour and failed on the gateway as reviewed (fixed in 5e6701b); each
 * `held:` test is a guard that passed. No timing asserts: statuses, RateLimit headers, 429 onset, audit lines, the budget
 * and what the upstream received.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { HEADERS, makeKey, postAs, startCountingUpstream } from '../helpers/counting-upstream.ts';
import type { CountingUpstream, TestKey } from '../helpers/counting-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { rawExchange, waitFor } from '../helpers/net.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { BodyBuffer, BufferBudget } from '../../src/proxy/body-buffer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function configObject(upstreamUrl: string, keys: TestKey[], extra: Record<string, unknown> = {}) {
  return {
    listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    auth: { session_secret: 'p'.repeat(40) },
    keys: keys.map((k) => k.config),
    ...extra,
  };
}
const configText = (u: string, k: TestKey[], e: Record<string, unknown> = {}) =>
  JSON.stringify(configObject(u, k, e));

const post = postAs;

const ping = (id: number | string) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });
const call = (id: number | string, name: string) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

function linesOf(gateway: TestGateway, key: TestKey) {
  return gateway.auditLines.filter((l) => l.key === key.label);
}

async function redisCalls(url: string): Promise<number> {
  const { default: Redis } = (await import('ioredis')) as unknown as {
    default: new (url: string) => { info(s: string): Promise<string>; quit(): Promise<unknown> };
  };
  const client = new Redis(url);
  try {
    const info = await client.info('commandstats');
    let total = 0;
    for (const m of info.matchAll(/cmdstat_(evalsha|eval|evalsha_ro|eval_ro):calls=(\d+)/g))
      total += Number(m[2]);
    return total;
  } finally {
    await client.quit();
  }
}

/* ------------------------------------------------------------------------------------------------ */

describe('memory store', () => {
  let upstream: CountingUpstream;
  before(async () => {
    upstream = await startCountingUpstream();
  });
  after(async () => {
    await upstream?.close();
  });

  /**
   * A key that used its whole quota (refill 0) is refused; the operator reloads with a refill. The
   * store refills the bucket from then on, but admission.ts remembered the key "empty until
   * now + Infinity" (retryAfterMs of a bucket that never refills) and refuses every request of the
   * key without asking the store, forever (until a restart). Since 164f377 this covers GET and DELETE
   * too (prepay), not only POSTs.
   */
  it('defect: a key whose quota was used up is served again once a reload gives it a refill', async () => {
    const quota = makeKey('quota', { capacity: 1, refill_per_second: 0 });
    const g = await startTestGateway(configText(upstream.url, [quota]));
    try {
      assert.equal((await post(g.mcpUrl, quota, ping(1))).status, 200);
      assert.equal((await post(g.mcpUrl, quota, ping(2))).status, 429); // learned: empty forever
      const next = parseConfigText(
        configText(upstream.url, [makeKeyWith(quota, { capacity: 5, refill_per_second: 1000 })]),
        {},
        Date.now(),
      ).config!;
      const outcome = await g.runtime.reload(next);
      assert.equal(outcome.applied, true);
      await sleep(50); // the store has refilled the bucket (1000 tokens a second)
      // The store has tokens: a request refused for a forged session pays its token (the reload's
      // new bucket dropped the memory of empty keys) and gets its 404, not 429.
      const forged = await post(g.mcpUrl, quota, ping(4), { 'mcp-session-id': 'forged' });
      assert.equal(forged.status, 404, `the store itself: ${forged.status}`);
      const res = await post(g.mcpUrl, quota, ping(3));
      assert.equal(
        res.status,
        200,
        `after the reload gave a refill: ${res.status} ${res.headers.get('ratelimit')}`,
      );
    } finally {
      await g.close(100);
    }
  });

  /**
   * Node answers `Expect: 100-continue` with `100 Continue` by itself (no 'checkContinue' listener),
   * before the request is authenticated or has paid: a key whose bucket is known to be empty is
   * invited to send its whole body, and is then answered 429 with the connection closed.
   */
  it('defect: a POST with Expect: 100-continue from an empty bucket is refused, not invited to send its body', async () => {
    const poor = makeKey('poor', { capacity: 1, refill_per_second: 0.001 });
    const g = await startTestGateway(configText(upstream.url, [poor]));
    try {
      assert.equal((await post(g.mcpUrl, poor, ping(1))).status, 200);
      assert.equal((await post(g.mcpUrl, poor, ping(2))).status, 429); // known empty now
      const u = new URL(g.mcpUrl);
      const answer = await rawExchange(
        g.mcpUrl,
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${poor.secret}\r\n` +
          `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
          `MCP-Protocol-Version: 2025-06-18\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n`,
        undefined,
      );
      const first = answer.split('\r\n')[0];
      assert.equal(first, 'HTTP/1.1 429 Too Many Requests', `first line: ${first}`);
    } finally {
      await g.close(100);
    }
  });

  it('held: a tools/call under a tool bucket takes one key token (429 onset, RateLimit r=)', async () => {
    const k = makeKey('tooled', {
      capacity: 4,
      refill_per_second: 0.001,
      tools: { echo: { capacity: 100, refill_per_second: 0.001 } },
    });
    const g = await startTestGateway(configText(upstream.url, [k]));
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await post(g.mcpUrl, k, call(i, 'echo'))).status);
      assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
      // The tool's bucket paid 4 (one per call), so r=96 were the tool refusing; the key refused.
      const res = await post(g.mcpUrl, k, call(9, 'echo'));
      assert.match(res.headers.get('ratelimit') ?? '', /^"default";r=0/);
    } finally {
      await g.close(100);
    }
  });

  it('held: a batch one larger than what is left keeps only its prepaid token', async () => {
    const k = makeKey('batcher', { capacity: 5, refill_per_second: 0.001 });
    const g = await startTestGateway(configText(upstream.url, [k]));
    try {
      const batch = (n: number, base: number) =>
        JSON.stringify(
          Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: base + i, method: 'ping' })),
        );
      assert.equal((await post(g.mcpUrl, k, batch(3, 0))).status, 200); // 2 left
      const refused = await post(g.mcpUrl, k, batch(3, 10)); // prepaid 1, rest 2 > 1 left
      assert.equal(refused.status, 429);
      assert.match(refused.headers.get('ratelimit') ?? '', /^"default";r=1/);
      assert.equal((await post(g.mcpUrl, k, ping(20))).status, 200); // the last one
      assert.equal((await post(g.mcpUrl, k, ping(21))).status, 429);
      assert.equal(upstream.counts.messages >= 4, true);
    } finally {
      await g.close(100);
    }
  });

  it('held: GET and DELETE pay one token each; an empty bucket never reaches the upstream', async () => {
    const k = makeKey('streamer', { capacity: 2, refill_per_second: 0.001 });
    const g = await startTestGateway(
      configText(upstream.url, [k], {
        auth: { allow_unauthenticated: false, session_secret: 'p'.repeat(40) },
      }),
    );
    const before = { ...upstream.counts };
    const ac = new AbortController();
    try {
      const get = await fetch(g.mcpUrl, {
        headers: { ...HEADERS, accept: 'text/event-stream', authorization: `Bearer ${k.secret}` },
        signal: ac.signal,
      });
      assert.equal(get.status, 200);
      assert.equal((await post(g.mcpUrl, k, ping(1))).status, 200);
      const del = await fetch(g.mcpUrl, {
        method: 'DELETE',
        headers: { ...HEADERS, authorization: `Bearer ${k.secret}` },
      });
      assert.equal(del.status, 429);
      await del.text();
      const get2 = await fetch(g.mcpUrl, {
        headers: { ...HEADERS, accept: 'text/event-stream', authorization: `Bearer ${k.secret}` },
      });
      assert.equal(get2.status, 429);
      await get2.text();
      assert.equal(upstream.counts.gets - before.gets, 1);
      assert.equal(upstream.counts.deletes - before.deletes, 0);
    } finally {
      ac.abort();
      await g.close(100);
    }
  });

  it('held: OPTIONS, HEAD and unknown methods take no token and never reach the upstream', async () => {
    const k = makeKey('methods', { capacity: 1, refill_per_second: 0.001 });
    const g = await startTestGateway(configText(upstream.url, [k]));
    const before = { ...upstream.counts };
    try {
      for (const method of ['OPTIONS', 'HEAD', 'PUT', 'PATCH']) {
        const res = await fetch(g.mcpUrl, {
          method,
          headers: { authorization: `Bearer ${k.secret}` },
          ...(method === 'PUT' || method === 'PATCH' ? { body: ping(1) } : {}),
        });
        await res.arrayBuffer();
        assert.ok(res.status === 405 || res.status === 204, `${method}: ${res.status}`);
      }
      assert.equal((await post(g.mcpUrl, k, ping(1))).status, 200); // its one token is still there
      assert.deepEqual(
        {
          p: upstream.counts.posts - before.posts,
          g: upstream.counts.gets - before.gets,
          o: upstream.counts.other - before.other,
        },
        { p: 1, g: 0, o: 0 },
      );
    } finally {
      await g.close(100);
    }
  });

  it('held: a refused POST is one audit line, rate_limited, with its peeked call and bytes_in; an unauthenticated one names no tool', async () => {
    const k = makeKey('audited', { capacity: 1, refill_per_second: 0.001 });
    const g = await startTestGateway(configText(upstream.url, [k]));
    try {
      assert.equal((await post(g.mcpUrl, k, ping(1))).status, 200);
      const body = call('x-7', 'secret_tool');
      const res = await post(g.mcpUrl, k, body);
      assert.equal(res.status, 429);
      assert.match(res.text, /"id":"x-7"/);
      const anon = await post(g.mcpUrl, undefined, call('anon-1', 'secret_tool'));
      assert.equal(anon.status, 401);
      await waitFor(() => (g.auditLines.length >= 3 ? true : undefined), 3000, 'three lines');
      const lines = linesOf(g, k);
      assert.equal(lines.length, 2);
      const refused = lines[1] as Record<string, unknown>;
      assert.equal(refused.decision, 'rate_limited');
      assert.equal(refused.bytes_in, Buffer.byteLength(body));
      assert.match(JSON.stringify(refused), /secret_tool/);
      const anonLine = g.auditLines.find((l) => l.key === undefined || l.key === null) as Record<
        string,
        unknown
      >;
      assert.ok(anonLine, JSON.stringify(g.auditLines));
      assert.notEqual(anonLine.decision, 'allow');
      assert.doesNotMatch(JSON.stringify(anonLine), /secret_tool/);
      assert.ok(!g.auditLines.some((l) => l.decision === 'allow' && (l.status as number) >= 400));
    } finally {
      await g.close(100);
    }
  });

  it('held: chunked bodies and Content-Length 0 hold nothing of the budget once answered', async () => {
    const k = makeKey('chunky', { capacity: 100, refill_per_second: 100 });
    const g = await startTestGateway(configText(upstream.url, [k]));
    try {
      const u = new URL(g.mcpUrl);
      const payload = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { pad: 'y'.repeat(200_000) } },
      });
      const chunked = `${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`;
      const answer = await rawExchange(
        g.mcpUrl,
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${k.secret}\r\n` +
          `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
          `MCP-Protocol-Version: 2025-06-18\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
        chunked,
        { ms: 3000 },
      );
      assert.match(answer, /^HTTP\/1\.1 200 /);
      const empty = await post(g.mcpUrl, k, '');
      assert.equal(empty.status, 400);
      await waitFor(() => (g.budget.used === 0 ? true : undefined), 3000, 'the budget given back');
      const lines = linesOf(g, k);
      assert.equal(lines.length, 2);
      assert.equal(lines[0]?.bytes_in, payload.length);
      assert.equal(lines[1]?.bytes_in, 0);
    } finally {
      await g.close(100);
    }
  });
});

function makeKeyWith(key: TestKey, rateLimit: Record<string, unknown>): TestKey {
  return { ...key, config: { ...key.config, rate_limit: rateLimit } };
}

/* ------------------------------------------------------------------------------------------------ */

describe('body buffer (unit)', () => {
  it('held: an announced body holds budget only for what arrived; release gives it all back', () => {
    const budget = new BufferBudget(64 * 1024 * 1024);
    const held = new BodyBuffer(budget, 4 * 1024 * 1024, 4 * 1024 * 1024);
    assert.equal(budget.used, 0);
    assert.equal(held.push(Buffer.alloc(10, 1)), undefined);
    assert.ok(budget.used <= 8192, `held for 10 bytes: ${budget.used}`);
    for (let i = 0; i < 100; i++) held.push(Buffer.alloc(10_000, 2));
    assert.ok(budget.used >= 1_000_010 && budget.used <= 2 * 1_000_010 + 4096, `used ${budget.used}`);
    assert.equal(held.bytes().length, 1_000_010);
    held.release(true);
    assert.equal(budget.used, 0);
    // The spare it left (4 MiB) is reused by the next announced body; still counted by arrival.
    const next = new BodyBuffer(budget, 4 * 1024 * 1024, 4 * 1024 * 1024);
    next.push(Buffer.alloc(10, 3));
    assert.ok(budget.used <= 8192, `next body for 10 bytes: ${budget.used}`);
    assert.deepEqual([...next.bytes()], new Array(10).fill(3));
    next.release();
    assert.equal(budget.used, 0);
  });

  it('held: a body larger than announced is held whole and refused past max', () => {
    const budget = new BufferBudget(1024 * 1024);
    const held = new BodyBuffer(budget, 10_000, 100);
    assert.equal(held.push(Buffer.alloc(80, 1)), undefined);
    assert.equal(held.push(Buffer.alloc(80, 2)), undefined);
    assert.equal(held.bytes().length, 160);
    assert.equal(held.bytes()[100], 2);
    assert.equal(held.push(Buffer.alloc(10_000)), 'too-large');
    held.release();
    assert.equal(budget.used, 0);
  });
});

/* ------------------------------------------------------------------------------------------------ */

describe('redis store', () => {
  let redis: RedisServer;
  let upstream: CountingUpstream;
  before(async () => {
    [redis, upstream] = await Promise.all([startRedisServer(), startCountingUpstream()]);
  });
  after(async () => {
    await upstream?.close();
    await redis?.close();
  });
  const redisConfig = (mode: 'deny' | 'allow' = 'deny') => ({
    rate_limit: { backend: 'redis', redis: { url: redis.url, timeout: '2s' }, on_store_error: mode },
  });

  it('held: a tools/call under a tool bucket costs one key token on Redis (cost-0 key bucket in the rest)', async () => {
    const k = makeKey('redis-tooled', {
      capacity: 3,
      refill_per_second: 0.001,
      tools: { echo: { capacity: 2, refill_per_second: 0.001 } },
    });
    const g = await startTestGateway(configText(upstream.url, [k], redisConfig()));
    try {
      const s1 = (await post(g.mcpUrl, k, call(1, 'echo'))).status;
      const s2 = (await post(g.mcpUrl, k, call(2, 'echo'))).status;
      const third = await post(g.mcpUrl, k, call(3, 'echo')); // tool empty: key's prepaid token kept
      assert.deepEqual([s1, s2, third.status], [200, 200, 429]);
      assert.match(third.headers.get('ratelimit') ?? '', /^"tool:echo";r=0/);
      const p = await post(g.mcpUrl, k, ping(4)); // key: 3 - 3 = 0
      assert.equal(p.status, 429);
      assert.match(p.headers.get('ratelimit') ?? '', /^"default";r=0/);
    } finally {
      await g.close(100);
    }
  });

  /**
   * README: "Once a key's bucket is known to be empty (a one-token request was refused), its
   * requests are refused without asking the store". A request refused for a session id the gateway
   * did not issue (failure.ts chargedWithPeekedId -> chargeRefused) asks Redis every time.
   */
  it('defect: a key known to be empty is refused without asking the store, also for a forged session id', async () => {
    const k = makeKey('redis-forger', { capacity: 1, refill_per_second: 0.001 });
    const g = await startTestGateway(configText(upstream.url, [k], redisConfig()));
    try {
      assert.equal((await post(g.mcpUrl, k, ping(1))).status, 200);
      assert.equal((await post(g.mcpUrl, k, ping(2))).status, 429); // learned: known empty
      const base = await redisCalls(redis.url);
      assert.equal((await post(g.mcpUrl, k, ping(3))).status, 429);
      assert.equal(await redisCalls(redis.url), base, 'a plain POST asks no store (held)');
      for (let i = 0; i < 5; i++) {
        const r = await post(g.mcpUrl, k, ping(10 + i), { 'mcp-session-id': `forged-${i}` });
        assert.equal(r.status, 429);
      }
      assert.equal(await redisCalls(redis.url), base, 'forged session ids asked the store');
    } finally {
      await g.close(100);
    }
  });

  it('held: on_store_error allow: prepay and consume fall back, one allow line each', async () => {
    const other = await startRedisServer();
    const k = makeKey('redis-fallback', {
      capacity: 1,
      refill_per_second: 0.001,
      tools: { echo: { capacity: 1, refill_per_second: 0.001 } },
    });
    const g = await startTestGateway(
      configText(upstream.url, [k], {
        rate_limit: { backend: 'redis', redis: { url: other.url, timeout: '2s' }, on_store_error: 'allow' },
      }),
    );
    try {
      await other.stop();
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await post(g.mcpUrl, k, call(i, 'echo'))).status);
      assert.deepEqual(statuses, [200, 200, 200, 200]);
      await waitFor(() => (linesOf(g, k).length >= 4 ? true : undefined), 3000, 'four lines');
      const lines = linesOf(g, k);
      assert.equal(lines.length, 4);
      for (const l of lines) assert.equal(l.decision, 'allow');
      assert.equal(upstream.counts.messages >= 4, true);
    } finally {
      await g.close(100);
      await other.close();
    }
  });

  it('held: a POST whose prepay waits on Redis has none of its streamed body read meanwhile', async () => {
    const k = makeKey('redis-streamer', { capacity: 100, refill_per_second: 100 });
    const g = await startTestGateway(configText(upstream.url, [k], redisConfig()));
    const posts = upstream.counts.posts;
    try {
      assert.equal((await post(g.mcpUrl, k, ping(0))).status, 200); // connected
      redis.pause();
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: 'big',
        method: 'tools/call',
        params: { name: 'echo', arguments: { pad: 'z'.repeat(1024 * 1024) } },
      });
      const pending = post(g.mcpUrl, k, body);
      await waitFor(() => (g.handler.inflight.size >= 1 ? true : undefined), 3000, 'the POST in flight');
      await sleep(300);
      const heldWhilePaying = g.budget.used;
      redis.resume();
      const res = await pending;
      assert.equal(heldWhilePaying, 0, `budget held while the token was not confirmed: ${heldWhilePaying}`);
      assert.equal(res.status, 200);
      assert.equal(upstream.counts.posts - posts, 2);
    } finally {
      redis.resume();
      await g.close(100);
    }
  });

  it('held: a GET whose client leaves while its prepay waits on Redis takes no stream slot and never reaches the upstream', async () => {
    const k = makeKey('redis-leaver', { capacity: 100, refill_per_second: 100, max_streams: 1 });
    const g = await startTestGateway(configText(upstream.url, [k], redisConfig()));
    const before = upstream.counts.gets;
    try {
      assert.equal((await post(g.mcpUrl, k, ping(0))).status, 200); // connected
      redis.pause();
      const ac = new AbortController();
      const pending = fetch(g.mcpUrl, {
        headers: { ...HEADERS, accept: 'text/event-stream', authorization: `Bearer ${k.secret}` },
        signal: ac.signal,
      }).catch(() => undefined);
      await waitFor(() => (g.handler.inflight.size >= 1 ? true : undefined), 3000, 'the GET in flight');
      ac.abort();
      await pending;
      await sleep(100);
      redis.resume();
      await waitFor(() => (linesOf(g, k).length >= 2 ? true : undefined), 5000, 'the GET line');
      await sleep(100);
      assert.equal(g.handler.streams.size, 0);
      assert.equal(upstream.counts.gets - before, 0);
      // Its slot is free: the one stream max_streams allows opens.
      const ac2 = new AbortController();
      const res = await fetch(g.mcpUrl, {
        headers: { ...HEADERS, accept: 'text/event-stream', authorization: `Bearer ${k.secret}` },
        signal: ac2.signal,
      });
      assert.equal(res.status, 200);
      ac2.abort();
      const lines = linesOf(g, k);
      assert.equal(lines.filter((l) => l.method === 'GET' || l.http_method === 'GET').length >= 1, true);
      assert.ok(!lines.slice(0, 2).some((l) => l.decision === 'allow' && l.status === 499));
    } finally {
      redis.resume();
      await g.close(100);
    }
  });
});

/* ------------------------------------------------------------------------------------------------ */

describe('HTTP+SSE transport', () => {
  it('held: the GET stream and each POST take one token each (429 onset), none twice', async () => {
    const upstream = await startRawSseUpstream((origin) => `${origin}/legacy/messages?sessionId=abc`);
    const k = makeKey('sse-key', { capacity: 3, refill_per_second: 0.001 });
    const g = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url, transport: 'sse' },
        auth: { session_secret: 's'.repeat(40) },
        keys: [k.config],
      }),
    );
    const ac = new AbortController();
    try {
      const res = await fetch(g.mcpUrl, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${k.secret}` },
        signal: ac.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      let text = '';
      while (!/data: (\S+)/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      const endpoint = /data: (\S+)/.exec(text)![1]!;
      const target = new URL(endpoint, g.mcpUrl).toString();
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await fetch(target, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${k.secret}` },
          body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
        });
        statuses.push(r.status);
        await r.text();
      }
      assert.deepEqual(statuses, [202, 202, 429]);
      assert.equal(upstream.posts.length, 2);
    } finally {
      ac.abort();
      await g.close(100);
      await upstream.close();
    }
  });
});
