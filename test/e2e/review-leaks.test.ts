/**
 * Attack review `leaks`: bookkeeping that never returns to zero. A seeded fuzzer drives random
 * sequences against a real gateway with small limits (max_in_flight 2, max_streams 2): requests
 * aborted at every stage (mid-head-wait, before the body ends, while waiting for the upstream,
 * mid-stream), GET streams, cancellations, batches, DELETEs, 429s, denials, upstream failures and
 * hangs, reloads; then, once everything is closed, every count must be back to zero (requests in
 * flight, open streams, the body budget) and every key must be admitted again up to its limits.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

const SECRET = 'l'.repeat(40);
const KEYS = ['mcpgate_leaks_alpha_0000000000000000', 'mcpgate_leaks_bravo_0000000000000000'];
/** A key with a small bucket: its requests are refused 429 often. */
const POOR = 'mcpgate_leaks_poor_00000000000000000';

/** A small deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Call {
  readonly mode?: string;
  readonly delay?: number;
}

/**
 * A Streamable HTTP upstream driven by each call's arguments: `mode` json (default), sse, hang (no
 * answer ever), ssehang (an SSE head, then nothing), reset (the connection dropped), 500; `delay` ms
 * first. GETs are held open as SSE streams (or refused, or dropped: `state.get`); DELETEs answered 200.
 */
async function startModeUpstream() {
  const open = new Set<ServerResponse>();
  const state = { get: 'hold' as 'hold' | 'reset' | '405', holding: 0, hangs: 0, posts: 0 };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    if (req.method === 'GET') {
      if (state.get === '405') return void res.writeHead(405).end();
      if (state.get === 'reset') return void setTimeout(() => req.socket.destroy(), 10);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      return;
    }
    if (req.method !== 'POST') return void res.writeHead(200).end();
    state.posts++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const batch = Array.isArray(parsed);
      const messages = (batch ? parsed : [parsed]) as { id?: unknown; params?: { arguments?: Call } }[];
      const requests = messages.filter((m) => m.id !== undefined);
      if (requests.length === 0) return void res.writeHead(202).end();
      const call = requests[0]?.params?.arguments ?? {};
      const answers = requests.map((m) => ({
        jsonrpc: '2.0',
        id: m.id,
        result: { content: [{ type: 'text', text: 'ok' }] },
      }));
      const mode = call.mode ?? 'json';
      setTimeout(() => {
        if (res.destroyed) return;
        switch (mode) {
          case 'hang':
            state.holding++;
            state.hangs++;
            res.on('close', () => state.holding--);
            return;
          case 'reset':
            return void req.socket.destroy();
          case '500':
            return void res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
          case 'ssehang':
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            return void res.write(': wait\n\n');
          case 'sse': {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            let i = 0;
            const next = () => {
              if (res.destroyed) return;
              const a = answers[i++];
              if (a === undefined) return void res.end();
              res.write(`event: message\ndata: ${JSON.stringify(a)}\n\n`);
              setTimeout(next, 5);
            };
            return next();
          }
          default:
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify(batch ? answers : answers[0]));
        }
      }, call.delay ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    state,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function configYaml(upstreamUrl: string, extra = '', capacity = 100_000): string {
  const key = (label: string, secret: string, cap: number) => `  - label: ${label}
    hash: "sha256:${sha256Hex(secret)}"
    allow: ["ok"]
    rate_limit: { capacity: ${cap}, refill_per_second: ${cap >= 1000 ? 1000 : 2}, max_in_flight: 2, max_streams: 2 }
`;
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
  timeout: 2s
${extra}auth:
  session_secret: "${SECRET}"
keys:
${key('alpha', KEYS[0] as string, capacity)}${key('bravo', KEYS[1] as string, capacity)}${key('poor', POOR, 5)}`;
}

async function reload(gateway: TestGateway, yaml: string): Promise<void> {
  const { config, issues } = parseConfigText(yaml, {}, Date.now());
  if (!config) throw new Error(issues.map((i) => i.message).join('\n'));
  await gateway.runtime.reload(config);
}

/** One raw request on its own connection (Connection: close), cut by the client at `stage`. */
type Stage = 'none' | 'head' | 'partial' | 'body' | 'firstByte';

interface Sent {
  readonly rid: string;
  readonly text: Promise<string>;
}

function send(
  port: number,
  opts: {
    rid: string;
    method: string;
    key: string;
    body?: string;
    stage: Stage;
    /** ms after the stage is reached before the client leaves (or, for `none`, gives up). */
    wait: number;
    headers?: string;
    path?: string;
  },
): Sent {
  const body = opts.body ?? '';
  const head =
    `${opts.method} ${opts.path ?? '/mcp'} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${opts.key}\r\n` +
    `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
    `MCP-Protocol-Version: 2025-06-18\r\nX-Request-Id: ${opts.rid}\r\nConnection: close\r\n${opts.headers ?? ''}` +
    (opts.method === 'POST' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : '') +
    '\r\n';
  const text = new Promise<string>((resolve) => {
    let got = '';
    const socket: Socket = connect(port, '127.0.0.1');
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(got);
    };
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('data', (d: Buffer) => {
      const first = got === '';
      got += d.toString('latin1');
      if (first && opts.stage === 'firstByte') setTimeout(finish, opts.wait);
    });
    socket.on('connect', () => {
      if (opts.stage === 'head') return void socket.write(head, () => setTimeout(finish, opts.wait));
      if (opts.stage === 'partial')
        return void socket.write(head + body.slice(0, body.length >> 1), () => setTimeout(finish, opts.wait));
      socket.write(head + body, () => {
        if (opts.stage === 'body') setTimeout(finish, opts.wait);
      });
      // Every request ends: an answer that never comes is given up after a while.
      setTimeout(finish, opts.stage === 'none' ? opts.wait : 4000);
    });
  });
  return { rid: opts.rid, text };
}

function call(id: number, mode: string, delay: number, name = 'ok'): object {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { mode, delay } } };
}

const MODES = ['json', 'json', 'sse', 'hang', 'ssehang', 'reset', '500'];
const STAGES: Stage[] = ['none', 'none', 'head', 'partial', 'body', 'firstByte'];

/** One random request of `key` (which one is chosen by `r`). */
function randomRequest(r: () => number, port: number, rid: string, key: string, n: number): Sent {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const stage = pick(STAGES);
  const wait = Math.floor(r() * 150);
  const kind = r();
  if (kind < 0.12) return send(port, { rid, method: 'GET', key, stage, wait: 50 + wait * 2 });
  if (kind < 0.17) return send(port, { rid, method: 'DELETE', key, stage, wait });
  let message: object;
  const m = r();
  if (m < 0.55) message = call(n, pick(MODES), Math.floor(r() * 60));
  else if (m < 0.65) message = call(n, 'json', 0, 'denied');
  else if (m < 0.75) message = [call(n, pick(MODES), Math.floor(r() * 40)), call(n + 1, 'json', 0)];
  else if (m < 0.82)
    message = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: n - 3 } };
  else if (m < 0.88) message = [call(n, 'json', 0), call(n + 1, 'json', 0, 'denied')];
  else if (m < 0.93) message = { jsonrpc: '2.0', id: n, method: 'ping' };
  else message = { jsonrpc: '2.0', id: n, method: 'tools/call', params: { name: 'ok' } };
  const body = JSON.stringify(message);
  return send(port, { rid, method: 'POST', key, body: r() < 0.04 ? body.slice(0, -1) : body, stage, wait });
}

/** Every count is back to zero, and each key gets max_in_flight calls and max_streams streams again. */
async function assertBackToZero(
  gateway: TestGateway,
  up: Awaited<ReturnType<typeof startModeUpstream>>,
  port: number,
  label: string,
): Promise<void> {
  const handler = gateway.handler;
  await waitFor(
    () => handler.inflight.size === 0,
    8000,
    `${label}: requests in flight ${handler.inflight.size}`,
  );
  assert.equal(handler.streams.size, 0, `${label}: open streams`);
  assert.equal(gateway.budget.used, 0, `${label}: body budget held`);
  await waitFor(() => up.state.holding === 0, 3000, `${label}: upstream answers held`);
  up.state.get = 'hold';
  for (const key of KEYS) {
    const before = up.state.hangs;
    const held = [0, 1].map((i) =>
      send(port, {
        rid: `${label}-final-${key.slice(14, 19)}-${i}`,
        method: 'POST',
        key,
        body: JSON.stringify(call(9000 + i, 'hang', 0)),
        stage: 'none',
        wait: 1000,
      }),
    );
    await waitFor(() => up.state.hangs === before + 2, 3000, `${label}: both slots of a key admitted`);
    const third = await send(port, {
      rid: `${label}-third-${key.slice(14, 19)}`,
      method: 'POST',
      key,
      body: JSON.stringify(call(9002, 'json', 0)),
      stage: 'none',
      wait: 2000,
    }).text;
    assert.match(third, /^HTTP\/1\.1 429 /, `${label}: the cap still holds`);
    const streams = [0, 1].map((i) =>
      send(port, {
        rid: `${label}-s-${key.slice(14, 19)}-${i}`,
        method: 'GET',
        key,
        stage: 'none',
        wait: 400,
      }),
    );
    const texts = await Promise.all(streams.map((s) => s.text));
    for (const t of texts)
      assert.match(t, /^HTTP\/1\.1 200 /, `${label}: a stream slot is admitted: ${t.slice(0, 200)}`);
    await Promise.all(held.map((h) => h.text));
  }
}

describe('review-leaks: counts come back to zero after a seeded storm', () => {
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  });

  async function storm(seed: number, extra: string, rounds: number, label: string, redis?: RedisServer) {
    const up = await startModeUpstream();
    closers.push(() => up.close());
    const yaml = configYaml(up.url, extra);
    const gateway = await startTestGateway(yaml);
    closers.push(() => gateway.close(100));
    const port = Number(new URL(gateway.mcpUrl).port);
    const r = rng(seed);
    const sent: Sent[] = [];
    let n = 1;
    for (let round = 0; round < rounds; round++) {
      const batch: Sent[] = [];
      const width = 3 + Math.floor(r() * 6);
      for (let i = 0; i < width; i++) {
        const which = r();
        const key = which < 0.45 ? KEYS[0] : which < 0.9 ? KEYS[1] : POOR;
        batch.push(randomRequest(r, port, `${label}-${round}-${i}`, key as string, n));
        n += 2;
        if (r() < 0.3) await sleep(Math.floor(r() * 20));
      }
      const event = r();
      if (event < 0.1) await reload(gateway, configYaml(up.url, extra, r() < 0.5 ? 100_000 : 90_000));
      else if (event < 0.18)
        up.state.get = (['hold', 'reset', '405'] as const)[Math.floor(r() * 3)] ?? 'hold';
      else if (event < 0.22 && redis !== undefined) {
        redis.pause();
        await sleep(80);
        redis.resume();
      }
      sent.push(...batch);
      if (round % 4 === 3) await Promise.all(batch.map((s) => s.text));
    }
    await Promise.all(sent.map((s) => s.text));
    await assertBackToZero(gateway, up, port, label);
    // One line per request the gateway parsed, never two.
    await waitFor(() => gateway.handler.inflight.size === 0, 5000, 'final requests');
    const counts = new Map<string, number>();
    for (const line of gateway.auditLines) {
      const rid = String(line.request_id);
      counts.set(rid, (counts.get(rid) ?? 0) + 1);
    }
    const twice = [...counts].filter(([, c]) => c > 1);
    assert.deepEqual(twice, [], 'a request with more than one audit line');
    const answered = sent.length;
    const lined = sent.filter((s) => counts.has(s.rid)).length;
    assert.ok(lined >= answered * 0.9, `${lined} of ${answered} requests have a line`);
  }

  it('holds: memory store, Streamable HTTP, seed 1', { timeout: 60_000 }, async () => {
    await storm(1, '', 40, 'mem1');
  });

  it('holds: Redis store (paused now and then), seed 3', { timeout: 60_000 }, async () => {
    const redis = await startRedisServer();
    closers.push(() => redis.close());
    await storm(
      3,
      `rate_limit:\n  backend: redis\n  redis: { url: "${redis.url}", timeout: 50ms }\n  on_store_error: allow\n`,
      40,
      'redis3',
      redis,
    );
  });
});

/**
 * An HTTP+SSE (2024-11-05) upstream: each GET gets its own endpoint; a POST there is accepted (202)
 * and its requests answered on that stream after `delay`, unless its call's `mode` says hang (the
 * POST never answered), reset (its connection dropped) or 500.
 */
async function startLegacyUpstream() {
  const open = new Set<ServerResponse>();
  const streams = new Map<string, ServerResponse>();
  const state = { hangs: 0, holding: 0 };
  let next = 0;
  const server: Server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    if (req.method === 'GET') {
      const session = String(next++);
      streams.set(session, res);
      res.on('close', () => streams.delete(session));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      return void res.write(`event: endpoint\ndata: /legacy/messages?sessionId=${session}\n\n`);
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const session = new URL(req.url ?? '/', 'http://x').searchParams.get('sessionId') ?? '';
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
      const messages = (Array.isArray(parsed) ? parsed : [parsed]) as {
        id?: unknown;
        params?: { arguments?: Call };
      }[];
      const call = messages[0]?.params?.arguments ?? {};
      if (call.mode === 'hang') {
        state.hangs++;
        state.holding++;
        return void res.on('close', () => state.holding--);
      }
      if (call.mode === 'reset') return void req.socket.destroy();
      if (call.mode === '500') return void res.writeHead(500).end('boom');
      res.writeHead(202).end('Accepted');
      setTimeout(() => {
        for (const m of messages) {
          if (m.id === undefined) continue;
          const answer = { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } };
          streams.get(session)?.write(`event: message\ndata: ${JSON.stringify(answer)}\n\n`);
        }
      }, call.delay ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/legacy/sse`,
    state,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A GET stream of the HTTP+SSE transport, open until `close`; `path` is the endpoint it named. */
async function legacyStream(url: string, key: string): Promise<{ path: string; close(): void }> {
  const { port, pathname } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  const path = new Promise<string>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const m = /event: endpoint\r?\ndata: ([^\r\n]+)/.exec(text);
      if (m)
        resolve(new URL(m[1] as string, 'http://x').pathname + new URL(m[1] as string, 'http://x').search);
    });
    socket.on('close', () => reject(new Error(`stream closed: ${text.slice(0, 300)}`)));
    setTimeout(() => reject(new Error(`no endpoint: ${text.slice(0, 400)}`)), 3000);
  });
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${key}\r\n` +
      `Accept: text/event-stream\r\n\r\n`,
  );
  return { path: await path, close: () => socket.destroy() };
}

describe('review-leaks: the HTTP+SSE transport gives its counts back too', () => {
  const closers: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  });

  it(
    'holds: POSTs of every outcome on live sessions, streams closed, seed 4',
    { timeout: 60_000 },
    async () => {
      const up = await startLegacyUpstream();
      closers.push(() => up.close());
      const yaml = configYaml(up.url, '  transport: sse\n');
      const gateway = await startTestGateway(yaml);
      closers.push(() => gateway.close(100));
      const port = Number(new URL(gateway.mcpUrl).port);
      const r = rng(4);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
      const sent: Sent[] = [];
      let n = 1;
      for (let round = 0; round < 12; round++) {
        const key = pick(KEYS);
        const stream = await legacyStream(gateway.mcpUrl, key);
        const batch: Sent[] = [];
        for (let i = 0; i < 6; i++) {
          const m = r();
          const message =
            m < 0.6
              ? call(n, pick(['json', 'hang', 'reset', '500']), Math.floor(r() * 40))
              : m < 0.75
                ? call(n, 'json', 0, 'denied')
                : m < 0.85
                  ? [call(n, 'json', 0), call(n + 1, 'json', 5)]
                  : { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: n - 2 } };
          n += 2;
          batch.push(
            send(port, {
              rid: `sse-${round}-${i}`,
              method: 'POST',
              key,
              path: stream.path,
              body: JSON.stringify(message),
              stage: pick(STAGES),
              wait: Math.floor(r() * 150),
            }),
          );
        }
        if (r() < 0.2) await reload(gateway, configYaml(up.url, '  transport: sse\n', 90_000));
        // The stream closes while POSTs of its session are still coming, or after they are done.
        if (r() < 0.5) await sleep(Math.floor(r() * 100));
        else await Promise.all(batch.map((s) => s.text));
        stream.close();
        sent.push(...batch);
      }
      await Promise.all(sent.map((s) => s.text));
      const handler = gateway.handler;
      await waitFor(() => handler.inflight.size === 0, 8000, `requests in flight ${handler.inflight.size}`);
      assert.equal(handler.streams.size, 0);
      assert.equal(gateway.budget.used, 0);
      await waitFor(() => up.state.holding === 0, 3000, 'upstream POSTs held');
      for (const key of KEYS) {
        const stream = await legacyStream(gateway.mcpUrl, key);
        const before = up.state.hangs;
        const held = [0, 1].map((i) =>
          send(port, {
            rid: `sse-final-${key.slice(14, 19)}-${i}`,
            method: 'POST',
            key,
            path: stream.path,
            body: JSON.stringify(call(9000 + i, 'hang', 0)),
            stage: 'none',
            wait: 1500,
          }),
        );
        await waitFor(() => up.state.hangs === before + 2, 3000, 'both slots of a key admitted');
        const third = await send(port, {
          rid: `sse-third-${key.slice(14, 19)}`,
          method: 'POST',
          key,
          path: stream.path,
          body: JSON.stringify(call(9002, 'json', 0)),
          stage: 'none',
          wait: 1000,
        }).text;
        assert.match(third, /^HTTP\/1\.1 429 /, 'the cap still holds');
        await Promise.all(held.map((h) => h.text));
        stream.close();
      }
      const counts = new Map<string, number>();
      for (const line of gateway.auditLines) {
        const rid = String(line.request_id);
        counts.set(rid, (counts.get(rid) ?? 0) + 1);
      }
      assert.deepEqual(
        [...counts].filter(([, c]) => c > 1),
        [],
        'a request with more than one audit line',
      );
      assert.ok(sent.filter((s) => counts.has(s.rid)).length >= sent.length * 0.9);
    },
  );
});
