/**
 * Issue 5: per-key token buckets, end to end through the real gateway (memory store) to a real
 * SDK upstream that records what it received. A refusal is 429 with Retry-After, the RateLimit
 * headers and a JSON-RPC error a model can act on, and it never reaches the upstream.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream, receivedWith } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const PROTOCOL = '2025-06-18';
const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': PROTOCOL,
};

interface KeySpec {
  readonly label: string;
  readonly rate_limit: Record<string, unknown>;
}

interface TestKey {
  readonly label: string;
  readonly secret: string;
  readonly config: Record<string, unknown>;
}

function makeKey(spec: KeySpec): TestKey {
  const secret = mintKey(randomBytes(32));
  return {
    label: spec.label,
    secret,
    config: {
      label: spec.label,
      hash: `sha256:${sha256Hex(secret)}`,
      allow: ['*'],
      rate_limit: spec.rate_limit,
    },
  };
}

/** The config as JSON (a subset of YAML). */
function configFor(upstreamUrl: string, keys: readonly TestKey[]): string {
  return JSON.stringify({
    listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    keys: keys.map((k) => k.config),
  });
}

const call = (id: number | string, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

function post(
  gateway: TestGateway,
  key: TestKey,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(gateway.mcpUrl, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${key.secret}`, ...headers },
    body: JSON.stringify(body),
  });
}

interface RpcError {
  jsonrpc: string;
  id: unknown;
  error: { code: number; message: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate limits (memory store) with a stateless upstream', () => {
  const keys = {
    five: makeKey({ label: 'five', rate_limit: { capacity: 5, refill_per_second: 0.08 } }),
    fast: makeKey({ label: 'fast', rate_limit: { capacity: 2, refill_per_second: 10 } }),
    burst: makeKey({ label: 'burst', rate_limit: { capacity: 20, refill_per_second: 0.001 } }),
    one: makeKey({ label: 'one', rate_limit: { capacity: 1, refill_per_second: 0.001 } }),
    two: makeKey({ label: 'two', rate_limit: { capacity: 2, refill_per_second: 0.001 } }),
    four: makeKey({ label: 'four', rate_limit: { capacity: 4, refill_per_second: 0.001 } }),
    tools: makeKey({
      label: 'tools',
      rate_limit: {
        capacity: 100,
        refill_per_second: 0.001,
        tools: { 'slow*': { capacity: 1, refill_per_second: 0.001 } },
      },
    }),
  };
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    gateway = await startTestGateway(configFor(upstream.url, Object.values(keys)));
  });
  after(async () => {
    await gateway.close(100);
    await upstream.close();
  });

  it('lets capacity calls through and refuses the next with 429, Retry-After, RateLimit headers and a JSON-RPC error', async () => {
    const key = keys.five;
    const started = performance.now();
    for (let i = 1; i <= 5; i++) {
      const res = await post(gateway, key, call(i, 'echo', { message: `five-${i}` }));
      assert.equal(res.status, 200, `call ${i}`);
      assert.match(await res.text(), new RegExp(`Echo: five-${i}`));
    }
    const res = await post(gateway, key, call('sixth', 'echo', { message: 'five-6' }));
    const elapsed = performance.now() - started;
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('content-type'), 'application/json');
    // One token comes back every 12.5 s: the wait is 12.5 s less the time the five calls took,
    // rounded UP to whole seconds (13; rounding down or to nearest would say 12).
    const retryAfter = res.headers.get('retry-after');
    assert.match(retryAfter ?? '', /^\d+$/);
    const seconds = Number(retryAfter);
    if (elapsed < 500) assert.equal(seconds, 13);
    else assert.ok(seconds >= Math.ceil(12.5 - elapsed / 1000) && seconds <= 13, `Retry-After ${seconds}`);
    assert.equal(res.headers.get('ratelimit-policy'), '"default";q=5;w=63');
    assert.equal(res.headers.get('ratelimit'), `"default";r=0;t=${seconds}`);
    assert.deepEqual((await res.json()) as RpcError, {
      jsonrpc: '2.0',
      id: 'sixth',
      error: { code: -32029, message: `rate limit exceeded for this key; retry after ${seconds} s` },
    });
    // Counted on the upstream's side: the five went through, the sixth never arrived.
    assert.equal(receivedWith(upstream, '"five-'), 5);
    assert.equal(receivedWith(upstream, 'five-6'), 0);
    // Refused before its body was read (it could not prepay): its line has no parsed message.
    const ctx = await waitFor(() =>
      gateway.finished.find((c) => c.principal?.name === 'five' && c.status === 429),
    );
    assert.equal(ctx.messages, undefined);
    assert.equal(ctx.decision, 'rate_limited');
    assert.equal(ctx.reason, 'ERR_RATE_LIMITED');
    assert.equal(ctx.status, 429);
    assert.equal(ctx.rateLimitFallback, undefined);
  });

  it('passes again once the bucket has refilled', async () => {
    const key = keys.fast;
    // Ten tokens a second come back, so drain the bucket with bursts until one call is refused.
    let refused: { status: number; retryAfter: string | null; message: string } | undefined;
    let passed = 0;
    for (let round = 0; round < 20 && refused === undefined; round++) {
      const burst = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const res = await post(
            gateway,
            key,
            call(`${round}-${i}`, 'echo', { message: `fast-${round}-${i}` }),
          );
          return {
            status: res.status,
            retryAfter: res.headers.get('retry-after'),
            message: await res.text(),
          };
        }),
      );
      refused = burst.find((r) => r.status === 429);
      passed += burst.filter((r) => r.status === 200).length;
    }
    assert.ok(refused, 'a burst of calls on a bucket of 2 was refused');
    // The wait is at most 100 ms, which Retry-After rounds up to 1 s.
    assert.equal(refused.retryAfter, '1');
    assert.match(refused.message, /rate limit exceeded for this key; retry after 1 s/);
    // The refused calls never arrived: the upstream saw exactly the calls answered 200.
    assert.equal(receivedWith(upstream, '"fast-'), passed);
    await sleep(150);
    const again = await post(gateway, key, call('again', 'echo', { message: 'fast-again' }));
    assert.equal(again.status, 200);
    assert.match(await again.text(), /Echo: fast-again/);
    assert.equal(receivedWith(upstream, 'fast-again'), 1);
  });

  it('admits exactly the capacity out of 200 concurrent calls', async () => {
    const key = keys.burst;
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        post(gateway, key, call(i, 'echo', { message: `burst-${i}` })).then(async (res) => ({
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          body: await res.text(),
        })),
      ),
    );
    const ok = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status === 429);
    assert.equal(ok.length, 20);
    assert.equal(refused.length, 180);
    for (const r of refused) {
      assert.match(r.retryAfter ?? '', /^\d+$/);
      assert.equal((JSON.parse(r.body) as RpcError).error.code, -32029);
    }
    assert.equal(receivedWith(upstream, '"burst-'), 20);
  });

  it('takes a token for every message: notifications and responses cannot flood for free', async () => {
    const key = keys.one;
    const note = (marker: string) => ({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 'none', reason: marker },
    });
    const first = await post(gateway, key, note('free-note-1'));
    assert.equal(first.status, 202);
    await first.body?.cancel();
    // The bucket of one is empty now: the next notification, a JSON-RPC response (e.g. to a
    // server's ping) and a call are each refused, and none reaches the upstream.
    for (const body of [
      note('free-note-2'),
      { jsonrpc: '2.0', id: 'srv-1', result: { marker: 'free-reply' } },
      call(1, 'echo', { message: 'one-after-notes' }),
    ]) {
      const res = await post(gateway, key, body);
      assert.equal(res.status, 429, JSON.stringify(body));
      await res.body?.cancel();
    }
    assert.equal(receivedWith(upstream, 'free-note-1'), 1);
    assert.equal(receivedWith(upstream, 'free-note-2'), 0);
    assert.equal(receivedWith(upstream, 'free-reply'), 0);
    assert.equal(receivedWith(upstream, 'one-after-notes'), 0);
    const refused = await waitFor(() =>
      gateway.finished.find((c) => c.principal?.name === 'one' && c.decision === 'rate_limited'),
    );
    assert.equal(refused.reason, 'ERR_RATE_LIMITED');
  });

  it('charges each request of a batch: a batch of 3 with capacity 2 is refused whole', async () => {
    const key = keys.two;
    const batch = [
      call('b1', 'echo', { message: 'batch3-a' }),
      call('b2', 'echo', { message: 'batch3-b' }),
      call('b3', 'echo', { message: 'batch3-c' }),
    ];
    const res = await post(gateway, key, batch);
    assert.equal(res.status, 429);
    // Three never fit in a bucket of two: waiting would not help, so there is no Retry-After.
    assert.equal(res.headers.get('retry-after'), null);
    assert.equal(res.headers.get('ratelimit'), '"default";r=1');
    // One error per request of the batch, so the client can match every id.
    const tooBig =
      'rate limit exceeded for this key; a batch may hold at most 2 such requests, send fewer at once';
    assert.deepEqual(
      (await res.json()) as RpcError[],
      ['b1', 'b2', 'b3'].map((id) => ({ jsonrpc: '2.0', id, error: { code: -32029, message: tooBig } })),
    );
    assert.equal(receivedWith(upstream, 'batch3-'), 0);
    // The refusal took the token its body prepaid (the gateway read and parsed it), and no more:
    // one is left for one call, and then none.
    const one = await post(gateway, key, call('c1', 'echo', { message: 'batch2-a' }));
    assert.equal(one.status, 200);
    assert.match(await one.text(), /Echo: batch2-a/);
    assert.equal(receivedWith(upstream, 'batch2-'), 1);
    const after = await post(gateway, key, call('c3', 'echo', { message: 'batch-after' }));
    assert.equal(after.status, 429);
    await after.body?.cancel();
    assert.equal(receivedWith(upstream, 'batch-after'), 0);
  });

  it('refuses a batch that needs more tokens than are left, and forwards none of it', async () => {
    const key = keys.four;
    for (let i = 1; i <= 2; i++)
      assert.equal((await post(gateway, key, call(i, 'echo', { message: `four-${i}` }))).status, 200);
    // Two tokens left, the batch needs three. Its prepaid token stays taken, so one is left, and the
    // batch sent again needs three: two more, back in 2000 s.
    const batch = [
      call('d1', 'echo', { message: 'four-batch-a' }),
      call('d2', 'echo', { message: 'four-batch-b' }),
      call('d3', 'echo', { message: 'four-batch-c' }),
    ];
    const res = await post(gateway, key, batch);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '2000');
    // Its first token prepaid, one was left for the two it still needed.
    assert.equal(res.headers.get('ratelimit'), '"default";r=1;t=2000');
    assert.deepEqual(
      (await res.json()) as RpcError[],
      ['d1', 'd2', 'd3'].map((id) => ({
        jsonrpc: '2.0',
        id,
        error: { code: -32029, message: 'rate limit exceeded for this key; retry after 2000 s' },
      })),
    );
    assert.equal(receivedWith(upstream, 'four-batch-'), 0);
  });

  it('limits a tool by its own bucket without touching the other tools', async () => {
    const key = keys.tools;
    const first = await post(gateway, key, call(1, 'slow', { ms: 1 }));
    assert.equal(first.status, 200);
    assert.match(await first.text(), /slow done/);
    const second = await post(gateway, key, call(2, 'slow', { ms: 2 }));
    assert.equal(second.status, 429);
    // 0.001 tokens a second: 1000 s until the tool's bucket has a token again.
    assert.equal(second.headers.get('retry-after'), '1000');
    assert.equal(second.headers.get('ratelimit-policy'), '"default";q=100;w=100000, "tool:slow*";q=1;w=1000');
    assert.equal(second.headers.get('ratelimit'), '"tool:slow*";r=0;t=1000');
    assert.deepEqual((await second.json()) as RpcError, {
      jsonrpc: '2.0',
      id: 2,
      error: {
        code: -32029,
        message: 'rate limit exceeded for this key\'s calls to tools matching "slow*"; retry after 1000 s',
      },
    });
    const echo = await post(gateway, key, call(3, 'echo', { message: 'tools-echo' }));
    assert.equal(echo.status, 200);
    assert.match(await echo.text(), /Echo: tools-echo/);
    assert.deepEqual(
      upstream.toolCalls().filter((name) => name === 'slow'),
      ['slow'],
    );
  });
});

describe('open GET streams per key', () => {
  const key = makeKey({
    label: 'streams',
    rate_limit: { capacity: 100, refill_per_second: 1, max_streams: 2 },
  });
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const controllers: AbortController[] = [];
  before(async () => {
    upstream = await startSdkUpstream({ jsonResponse: true });
    gateway = await startTestGateway(configFor(upstream.url, [key]));
  });
  after(async () => {
    for (const c of controllers) c.abort();
    await gateway.close(100);
    await upstream.close();
  });

  /** A new session through the gateway (the SDK allows one standalone GET stream per session). */
  async function session(): Promise<string> {
    const res = await post(gateway, key, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    });
    assert.equal(res.status, 200);
    const id = res.headers.get('mcp-session-id');
    assert.ok(id);
    await res.text();
    const initialized = await post(
      gateway,
      key,
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { 'mcp-session-id': id },
    );
    assert.equal(initialized.status, 202);
    await initialized.body?.cancel();
    return id;
  }

  async function openStream(sessionId: string): Promise<{ res: Response; controller: AbortController }> {
    const controller = new AbortController();
    controllers.push(controller);
    const res = await fetch(gateway.mcpUrl, {
      method: 'GET',
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${key.secret}`,
        'mcp-session-id': sessionId,
        'mcp-protocol-version': PROTOCOL,
      },
      signal: controller.signal,
    });
    // Keep reading so the stream stays open and flowing until aborted.
    if (res.status === 200) res.body?.pipeTo(new WritableStream()).catch(() => {});
    return { res, controller };
  }

  const upstreamGets = () => upstream.received.filter((r) => r.method === 'GET').length;

  it('refuses a stream over max_streams with 429 and frees the slot when one closes', async () => {
    const [a, b, c] = [await session(), await session(), await session()];
    const first = await openStream(a);
    const second = await openStream(b);
    assert.equal(first.res.status, 200);
    assert.equal(first.res.headers.get('content-type'), 'text/event-stream');
    assert.equal(second.res.status, 200);
    await waitFor(() => upstreamGets() === 2 || undefined, 3000, 'both streams to reach the upstream');

    const third = await openStream(c);
    assert.equal(third.res.status, 429);
    assert.deepEqual((await third.res.json()) as RpcError, {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32029, message: 'too many open streams for this key' },
    });
    assert.equal(upstreamGets(), 2, 'the refused stream never reached the upstream');
    const refused = await waitFor(() => gateway.finished.find((ctx) => ctx.req.method === 'GET'));
    assert.equal(refused.decision, 'rate_limited');
    assert.equal(refused.reason, 'ERR_TOO_MANY_STREAMS');

    // Closing a stream gives its slot back: poll until the gateway has seen the close.
    first.controller.abort();
    await waitFor(
      () => gateway.finished.filter((ctx) => ctx.req.method === 'GET').length === 2 || undefined,
      3000,
      'the aborted stream to be released',
    );
    const fourth = await openStream(c);
    assert.equal(fourth.res.status, 200);
    assert.equal(fourth.res.headers.get('content-type'), 'text/event-stream');
    await waitFor(() => upstreamGets() === 3 || undefined, 3000, 'the new stream to reach the upstream');
    // And the cap still holds with the freed slot taken again.
    const fifth = await openStream(a);
    assert.equal(fifth.res.status, 429);
    await fifth.res.body?.cancel();
  });
});
