/**
 * Review: several replicas behind one balancer, sharing one real redis-server (`backend: redis`),
 * one upstream and one `auth.session_secret`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { REDIS_SERVER_PATH, startRedisServer } from '../helpers/redis-server.ts';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisServer } from '../helpers/redis-server.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { connect, createServer } from 'node:net';
import type { Socket } from 'node:net';
import { parseConfigText } from '../../src/config/load.ts';
import { request as httpRequest } from 'node:http';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};
const SECRET = 'review-replicas-shared-session-secret-0123456789';

interface TestKey {
  readonly secret: string;
  readonly config: Record<string, unknown>;
}

function makeKey(label: string, capacity: number, refill = 0.001): TestKey {
  const secret = mintKey(randomBytes(32));
  return {
    secret,
    config: {
      label,
      hash: `sha256:${sha256Hex(secret)}`,
      allow: ['*'],
      rate_limit: { capacity, refill_per_second: refill },
    },
  };
}

function configFor(
  upstreamUrl: string,
  redisUrl: string,
  keys: readonly TestKey[],
  timeout = '200ms',
  onStoreError: 'deny' | 'allow' = 'deny',
): string {
  return JSON.stringify({
    listen: '127.0.0.1:0',
    upstream: { url: upstreamUrl },
    auth: { session_secret: SECRET },
    keys: keys.map((k) => k.config),
    rate_limit: { backend: 'redis', redis: { url: redisUrl, timeout }, on_store_error: onStoreError },
  });
}

const FALLBACKS = ['store_unavailable', 'store_error', 'store_timeout'];

let nextId = 0;

async function echo(
  url: string,
  key: TestKey,
): Promise<{ id: string; status: number; headers: Headers; body: string }> {
  const id = `rep-${++nextId}`;
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${key.secret}` },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: id } },
    }),
  });
  return { id, status: res.status, headers: res.headers, body: await res.text() };
}

/** One Redis command over a raw socket (RESP), its reply as text. */
function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (
        reply.endsWith('\r\n') &&
        (reply[0] !== '$' || reply.startsWith('$-1') || reply.split('\r\n').length >= 3)
      ) {
        socket.destroy();
        resolve(reply);
      }
    });
    socket.once('error', reject);
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

/** Tokens a key's own bucket holds in Redis (as of its last take). */
async function tokensOf(label: string): Promise<number> {
  const reply = await redisCommand(redis.port, 'HGET', `mcpgate:{key:${label}}`, 'tk');
  return Number(reply.split('\r\n')[1]);
}

let redis: RedisServer;
let upstream: SdkUpstream;
before(async () => {
  [redis, upstream] = await Promise.all([
    startRedisServer(),
    startSdkUpstream({ stateless: true, jsonResponse: true }),
  ]);
});
after(async () => {
  await upstream?.close();
  await redis?.close();
});

describe('replicas review: a Redis that stops answering (hung, frozen, partitioned)', () => {
  const key = makeKey('stalled', 1000);
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    const yaml = configFor(upstream.url, redis.url, [key]);
    [a, b] = await Promise.all([startTestGateway(yaml), startTestGateway(yaml)]);
  });
  after(async () => {
    redis.resume();
    await a?.close(200);
    await b?.close(200);
  });

  it('failed before: every decision was queued on the silent connection and charged when Redis woke', async () => {
    const first = await echo(a.mcpUrl, key);
    assert.equal(first.status, 200, first.body);
    const before = await tokensOf('stalled');
    redis.pause();
    // 25 waves of 12 concurrent calls over both replicas: each decision times out (503).
    const lines = a.auditLines.length + b.auditLines.length;
    let sent = 0;
    for (let wave = 0; wave < 25; wave++) {
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) => echo((i % 2 === 0 ? a : b).mcpUrl, key)),
      );
      for (const r of answers) {
        assert.equal(r.status, 503, r.body);
        assert.equal(r.headers.get('retry-after'), '1');
        assert.equal((JSON.parse(r.body) as { error: { code: number } }).error.code, -32603);
      }
      sent += answers.length;
    }
    await waitFor(
      () => a.auditLines.length + b.auditLines.length - lines === sent || undefined,
      3000,
      'lines',
    );
    redis.resume();
    const after = await waitFor(
      async () => {
        const r = await echo(a.mcpUrl, key);
        return r.status === 200 ? r : undefined;
      },
      10_000,
      'a decision from Redis again',
    );
    assert.ok(after.status === 200);
    const charged = before - (await tokensOf('stalled')) - 1;
    // Refused (503) without Redis, so not charged: at most those written before the gateway gave the
    // silent connection up (about a second's worth) may still run when Redis wakes.
    assert.ok(charged < sent / 2, `charged ${charged} tokens for ${sent} refused calls`);
  });
});

describe('replicas review: a full Redis (maxmemory, noeviction)', () => {
  const key = makeKey('full', 1000);
  let a: TestGateway;
  before(async () => {
    a = await startTestGateway(configFor(upstream.url, redis.url, [key], '1s'));
  });
  after(async () => {
    await redisCommand(redis.port, 'CONFIG', 'SET', 'maxmemory', '0');
    await a?.close(200);
  });

  it('holds: a take Redis refuses for memory is refused (503, store_error) and audited, never passed', async () => {
    const first = await echo(a.mcpUrl, key);
    assert.equal(first.status, 200, first.body);
    await redisCommand(redis.port, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await redisCommand(redis.port, 'CONFIG', 'SET', 'maxmemory', '1');
    const calls = upstream.received.length;
    const r = await echo(a.mcpUrl, key);
    assert.equal(r.status, 503, r.body);
    assert.equal(upstream.received.length, calls);
    const line = await waitFor(() => a.auditLines.find((l) => l.rpc_id === r.id), 2000, 'its line');
    assert.equal(line.reason, 'ERR_RATE_LIMIT_STORE');
    assert.equal(line.rate_limit_fallback, 'store_error');
  });
});

describe("replicas review: Redis gone between a POST's prepaid token and its body", () => {
  const key = makeKey('midway', 1000);
  let a: TestGateway;
  before(async () => {
    a = await startTestGateway(configFor(upstream.url, redis.url, [key], '1s'));
  });
  after(async () => {
    if (!redis.running) await redis.start();
    await a?.close(200);
  });

  it("holds: the batch's other messages cannot be paid for: 503, nothing forwarded, one line", async () => {
    const first = await echo(a.mcpUrl, key);
    assert.equal(first.status, 200, first.body);
    const tokens = await tokensOf('midway');
    const calls = upstream.received.length;
    const seen = a.auditLines.length;
    const body = JSON.stringify(
      [1, 2, 3].map((n) => ({
        jsonrpc: '2.0',
        id: `mid-${n}`,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'x' } },
      })),
    );
    const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(a.mcpUrl, {
        method: 'POST',
        headers: {
          ...HEADERS,
          authorization: `Bearer ${key.secret}`,
          'content-length': String(Buffer.byteLength(body)),
        },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.write(body.slice(0, 10));
      void waitFor(async () => ((await tokensOf('midway')) < tokens - 0.5 ? true : undefined), 3000, 'prepay')
        .then(() => redis.stop())
        .then(() => req.end(body.slice(10)), reject);
    });
    const got = await answer;
    assert.equal(got.status, 503, got.text);
    assert.equal(upstream.received.length, calls);
    await new Promise((r) => setTimeout(r, 200));
    const lines = a.auditLines.slice(seen);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]?.reason, 'ERR_RATE_LIMIT_STORE');
    assert.equal(lines[0]?.status, 503);
    assert.ok(FALLBACKS.includes(String(lines[0]?.rate_limit_fallback)));
  });
});

/** A TCP proxy to Redis that delays what crosses it: replies by `delayMs`, commands as set later. */
async function slowProxy(
  port: number,
  delayMs: number,
): Promise<{ url: string; delayCommands(ms: number): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let commandDelay = 0;
  const server = createServer((client) => {
    const upstreamSocket = connect({ port, host: '127.0.0.1' });
    sockets.add(client).add(upstreamSocket);
    client.on('data', (d) =>
      commandDelay === 0
        ? upstreamSocket.write(d)
        : setTimeout(() => upstreamSocket.writable && upstreamSocket.write(d), commandDelay),
    );
    upstreamSocket.on('data', (d) =>
      delayMs === 0 ? client.write(d) : setTimeout(() => client.writable && client.write(d), delayMs),
    );
    const end = () => {
      client.destroy();
      upstreamSocket.destroy();
    };
    client.on('close', end).on('error', end);
    upstreamSocket.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const proxyPort = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${proxyPort}`,
    delayCommands(ms) {
      commandDelay = ms;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('replicas review: rate_limit.redis.timeout at its edges', () => {
  it('failed before: a zero timeout passed validation, then the gateway could not start', () => {
    const yaml = configFor('http://127.0.0.1:9/mcp', 'redis://127.0.0.1:6379', [], '0ms');
    const { config, issues } = parseConfigText(yaml, {}, Date.now());
    assert.equal(config, undefined);
    assert.deepEqual(
      issues.filter((i) => i.severity === 'error').map((i) => i.path),
      ['rate_limit.redis.timeout'],
    );
  });

  it("holds: a timeout of 200h does not turn the connection's own timers into 1 ms", async () => {
    const key = makeKey('patient', 1000);
    const proxy = await slowProxy(redis.port, 20);
    const a = await startTestGateway(configFor(upstream.url, proxy.url, [key], '200h', 'allow'));
    try {
      const seen = a.auditLines.length;
      for (let i = 0; i < 3; i++) assert.equal((await echo(a.mcpUrl, key)).status, 200);
      const lines = a.auditLines.slice(seen);
      assert.deepEqual(
        lines.map((l) => l.rate_limit_fallback),
        [undefined, undefined, undefined],
      );
    } finally {
      await a.close(200);
      await proxy.close();
    }
  });
});

describe('replicas review: a used-up quota given back in Redis', () => {
  const key = makeKey('quota', 2, 0);
  let a: TestGateway;
  let b: TestGateway;
  before(async () => {
    const yaml = configFor(upstream.url, redis.url, [key], '1s');
    [a, b] = await Promise.all([startTestGateway(yaml), startTestGateway(yaml)]);
  });
  after(async () => {
    await a?.close(200);
    await b?.close(200);
  });

  it('failed before: a replica that had seen the quota refused kept refusing it until it restarted', async () => {
    assert.equal((await echo(a.mcpUrl, key)).status, 200);
    assert.equal((await echo(b.mcpUrl, key)).status, 200);
    // Both replicas learn that the quota is used up (it never refills).
    for (const gateway of [a, b, a, b]) {
      const refused = await echo(gateway.mcpUrl, key);
      assert.equal(refused.status, 429, refused.body);
      assert.match(refused.body, /quota is used up/);
    }
    // The operator gives the quota back (as a Redis restart without persistence would).
    assert.equal(await redisCommand(redis.port, 'DEL', 'mcpgate:{key:quota}'), ':1\r\n');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await echo(a.mcpUrl, key)).status, 200);
    assert.equal((await echo(b.mcpUrl, key)).status, 200);
    assert.equal((await echo(a.mcpUrl, key)).status, 429);
  });
});

/** A redis-server started with `args`, on a free port, in its own directory. */
async function spawnRedis(args: string[]): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgate-replicas-'));
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => probe.close(resolve));
  const child = spawn(
    REDIS_SERVER_PATH,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...args,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitFor(
    async () => ((await redisCommand(port, 'PING').catch(() => '')) === '+PONG\r\n' ? true : undefined),
    10_000,
    'redis-server',
  );
  return {
    port,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('replicas review: a Redis Cluster node as the store', () => {
  const nodes: { port: number; stop(): Promise<void> }[] = [];
  after(async () => {
    for (const node of nodes) await node.stop();
  });

  it('holds: a bucket whose slot another node serves is a store error (MOVED), refused by deny', async () => {
    for (let i = 0; i < 2; i++) nodes.push(await spawnRedis(['--cluster-enabled', 'yes']));
    const one = nodes[0] as { port: number };
    const two = nodes[1] as { port: number };
    await redisCommand(one.port, 'CLUSTER', 'ADDSLOTSRANGE', '0', '8191');
    await redisCommand(two.port, 'CLUSTER', 'ADDSLOTSRANGE', '8192', '16383');
    await redisCommand(one.port, 'CLUSTER', 'MEET', '127.0.0.1', String(two.port));
    await waitFor(
      async () =>
        (await redisCommand(one.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok') ? true : undefined,
      10_000,
      'the cluster',
    );
    // Two labels: one whose slot the first node serves, one the second serves.
    const slotOf = async (label: string) =>
      Number(
        /:(\d+)/.exec(await redisCommand(one.port, 'CLUSTER', 'KEYSLOT', `mcpgate:{key:${label}}`))?.[1],
      );
    const labels = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7'];
    const slots = await Promise.all(labels.map(slotOf));
    const here = labels[slots.findIndex((s) => s < 8192)] as string;
    const there = labels[slots.findIndex((s) => s >= 8192)] as string;
    const near = makeKey(here, 100);
    const far = makeKey(there, 100);
    const a = await startTestGateway(
      configFor(upstream.url, `redis://127.0.0.1:${one.port}`, [near, far], '1s'),
    );
    try {
      assert.equal((await echo(a.mcpUrl, near)).status, 200);
      const refused = await echo(a.mcpUrl, far);
      assert.equal(refused.status, 503, refused.body);
      assert.equal(a.auditLines.at(-1)?.rate_limit_fallback, 'store_error');
    } finally {
      await a.close(200);
    }
  });
});

describe('replicas review: a decision Redis answered in time, read late (the event loop was busy)', () => {
  const key = makeKey('busy', 1000);
  let a: TestGateway;
  before(async () => {
    a = await startTestGateway(configFor(upstream.url, redis.url, [key], '100ms'));
  });
  after(async () => {
    await a?.close(200);
  });

  it('failed before: the timer ran before the reply waiting in the socket was read: 503, and the token taken', async () => {
    assert.equal((await echo(a.mcpUrl, key)).status, 200);
    const before = await tokensOf('busy');
    // Right after the gateway has asked Redis (synchronously in its request handler), the event loop
    // is held for 300 ms (a large parse, a GC pause): Redis answers within a millisecond meanwhile.
    const hold = () =>
      setImmediate(() => {
        const until = performance.now() + 300;
        while (performance.now() < until);
      });
    a.server.once('request', hold);
    const r = await echo(a.mcpUrl, key);
    assert.equal(r.status, 200, r.body);
    assert.equal(a.auditLines.at(-1)?.rate_limit_fallback, undefined);
    assert.ok(before - (await tokensOf('busy')) > 0.99);
  });
});

describe("replicas review: a session opened on one replica, another key's requests on the other", () => {
  let scripted: ScriptedUpstream;
  let a: TestGateway;
  let b: TestGateway;
  const alice = makeKey('alice', 1000);
  const bob = makeKey('bob', 1000);
  before(async () => {
    scripted = await startScriptedUpstream();
    let n = 0;
    scripted.set((seen, res) => {
      if (seen.method !== 'POST')
        return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end();
      const id = (seen.body as { id?: unknown }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': `up-${++n}` });
      res.end(`id: ev-${n}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: {} })}\n\n`);
    });
    const yaml = configFor(scripted.url, redis.url, [alice, bob], '1s');
    [a, b] = await Promise.all([startTestGateway(yaml), startTestGateway(yaml)]);
  });
  after(async () => {
    await a?.close(200);
    await b?.close(200);
    await scripted?.close();
  });

  const send = async (
    gw: TestGateway,
    method: string,
    key: TestKey,
    headers: Record<string, string>,
    body?: string,
  ) => {
    const res = await fetch(gw.mcpUrl, {
      method,
      headers: { ...HEADERS, authorization: `Bearer ${key.secret}`, ...headers },
      ...(body === undefined ? {} : { body }),
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  it('holds: used, cancelled, resumed or deleted on B by another key, it never reaches the upstream', async () => {
    const init = await send(
      a,
      'POST',
      alice,
      {},
      '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"r","version":"1"}}}',
    );
    const session = init.headers.get('mcp-session-id') ?? '';
    const eventId = /^id: (.*)$/m.exec(init.text)?.[1] ?? '';
    assert.match(session, /^up-\d+\./);
    assert.match(eventId, /^ev-\d+\./);
    const seen = scripted.seen.length;
    const sid = { 'mcp-session-id': session };
    const refused = [
      await send(b, 'POST', bob, sid, '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'),
      await send(
        b,
        'POST',
        bob,
        sid,
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}',
      ),
      await send(b, 'GET', bob, { ...sid, 'last-event-id': eventId }),
      await send(b, 'DELETE', bob, sid),
    ];
    assert.deepEqual(
      refused.map((r) => r.status),
      [404, 404, 404, 404],
    );
    assert.equal(scripted.seen.length, seen);
    // Alice on B: her session and her seal work there (the secret is shared).
    const resumed = await send(b, 'GET', alice, { ...sid, 'last-event-id': eventId });
    assert.equal(resumed.status, 200);
    // An initialize's stream: its ids carry its answer's digest too (event-ids.ts sealOpening).
    assert.equal(
      scripted.seen.at(-1)?.headers['last-event-id'],
      eventId.replace(/\.[\w-]{22}\.[\w-]{16}$/, ''),
    );
    assert.equal(scripted.seen.at(-1)?.headers['mcp-session-id'], session.slice(0, session.lastIndexOf('.')));
  });
});

describe('replicas review: a Redis that is slow, not silent', () => {
  it('failed before: a decision that reached Redis after the gateway gave up on it still took its tokens', async () => {
    const key = makeKey('slow', 1000);
    const proxy = await slowProxy(redis.port, 0);
    const a = await startTestGateway(configFor(upstream.url, proxy.url, [key], '400ms'));
    try {
      for (let i = 0; i < 3; i++) assert.equal((await echo(a.mcpUrl, key)).status, 200);
      const before = await tokensOf('slow');
      proxy.delayCommands(800);
      const answers = await Promise.all(Array.from({ length: 10 }, () => echo(a.mcpUrl, key)));
      assert.deepEqual(
        answers.map((r) => r.status),
        Array.from({ length: 10 }, () => 503),
      );
      proxy.delayCommands(0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // Answered by on_store_error (503): none of them may have taken a token when it got there.
      const charged = before - (await tokensOf('slow'));
      assert.ok(charged < 0.5, `charged ${charged} tokens for 10 calls refused as timed out`);
      assert.equal((await echo(a.mcpUrl, key)).status, 200);
    } finally {
      await a.close(200);
      await proxy.close();
    }
  });
});
