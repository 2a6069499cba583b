/**
 * Fourteenth attack review: shared, bounded structures one key (or an unauthenticated client) can
 * fill, evict or poison so that another key is refused, slowed or loses state. Through a real
 * gateway in front of hand-scripted upstreams. `hole:` tests assert the secure behaviour and fail on
 * the code they were written against (each says what happens now); `held:` tests are attacks that
 * did not get through.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { waitFor } from '../helpers/net.ts';

const SECRET = 's'.repeat(40);
const ACCEPT = 'application/json, text/event-stream';

interface KeySpec {
  readonly label: string;
  readonly key: string;
  readonly capacity?: number;
  readonly maxInFlight?: number;
}

const newKey = () => mintKey(randomBytes(32));

function configFor(upstreamUrl: string, keys: readonly KeySpec[], extra = ''): string {
  const keyText = keys
    .map(
      (k) => `  - label: ${k.label}
    hash: "sha256:${sha256Hex(k.key)}"
    allow: ["echo"]
    rate_limit: { capacity: ${k.capacity ?? 100000}, refill_per_second: 1000${k.maxInFlight !== undefined ? `, max_in_flight: ${k.maxInFlight}` : ''} }
`,
    )
    .join('');
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
${extra}auth:
  session_secret: "${SECRET}"
keys:
${keyText}`;
}

function headersFor(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}`, accept: ACCEPT, 'content-type': 'application/json' };
}

async function post(
  url: string,
  key: string,
  body: string,
  signal?: AbortSignal,
): Promise<{ status: number; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: headersFor(key),
    body,
    ...(signal ? { signal } : {}),
  });
  return { status: res.status, text: await res.text() };
}

const call = (id: number | string, extra = '') =>
  `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"name":"echo","arguments":{${extra}}}}`;
const cancel = (id: number | string) =>
  `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${JSON.stringify(id)}}}`;

type Msg = { method?: string; id?: unknown; params?: Record<string, unknown> };
const messagesOf = (seen: Seen): Msg[] =>
  Array.isArray(seen.body) ? (seen.body as Msg[]) : seen.body ? [seen.body as Msg] : [];

function answerJson(res: ServerResponse, id: unknown, result: unknown = {}): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
}

// -----------------------------------------------------------------------------------------------
// PendingTags (src/integrity/cancels.ts)
// -----------------------------------------------------------------------------------------------

describe('review14: pending cancellations (PendingTags)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * An upstream that holds every tools/call whose arguments say `hold` (answered only at cleanup),
   * answers other requests at once and takes notifications with 202.
   */
  async function holdingUpstream(): Promise<{ upstream: ScriptedUpstream; held: ServerResponse[] }> {
    const upstream = await startScriptedUpstream();
    const held: ServerResponse[] = [];
    upstream.set((seen, res) => {
      res.on('error', () => {});
      const ms = messagesOf(seen);
      const one = ms[0];
      if (one?.method === 'tools/call' && (one.params?.arguments as { hold?: boolean } | undefined)?.hold) {
        held.push(res);
        return;
      }
      if (one?.id === undefined) return void res.writeHead(202).end();
      answerJson(res, one.id);
    });
    cleanups.push(async () => {
      for (const r of held) r.destroy();
      await upstream.close();
    });
    return { upstream, held };
  }

  it("hole: key A's requests refused 429 (max_in_flight) before the upstream evict key B's pending cancellation", async () => {
    // failed before: integrity.forward() remembers each request's tag in the process-wide PendingTags
    // before enterUpstream() refuses it (handler.ts), and an entry is forgotten only when a
    // response passes; so a batch refused 429 ERR_TOO_MANY_IN_FLIGHT, which never reaches the
    // upstream, leaves one entry per request. 11 such batches of 1,000 push out key B's pending
    // tools/call, and B's notifications/cancelled then names a fresh tag the upstream ignores: B's
    // long tool call can no longer be cancelled.
    const { upstream, held } = await holdingUpstream();
    const a: KeySpec = { label: 'a', key: newKey(), maxInFlight: 1 };
    const b: KeySpec = { label: 'b', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [a, b]));
    cleanups.push(async () => void (await gateway.close(100)));
    const url = gateway.mcpUrl;

    // B starts a long tool call (the upstream holds it).
    const bCall = post(url, b.key, call(7, '"hold":true')).catch(() => undefined);
    await waitFor(() => held.length === 1 || undefined, 5000, "B's call at the upstream");
    const bTag = messagesOf(upstream.seen.at(-1) as Seen)[0]?.id;
    assert.equal(typeof bTag, 'string');

    // Baseline: B's cancellation names B's request.
    assert.equal((await post(url, b.key, cancel(7))).status, 202);
    const firstCancel = messagesOf(upstream.seen.at(-1) as Seen)[0];
    assert.equal(firstCancel?.method, 'notifications/cancelled');
    assert.equal(firstCancel?.params?.requestId, bTag, "baseline: the cancellation names B's call");

    // A takes its one in-flight slot, then sends batches that are refused for it.
    const aCall = post(url, a.key, call(1, '"hold":true')).catch(() => undefined);
    await waitFor(() => held.length === 2 || undefined, 5000, "A's call at the upstream");
    const seenBefore = upstream.seen.length;
    for (let round = 0; round < 11; round++) {
      // Fresh ids each round (a repeated id replaces its own entry).
      const batch = `[${Array.from({ length: 1000 }, (_, i) => call(10 + round * 1000 + i)).join(',')}]`;
      const res = await post(url, a.key, batch);
      assert.equal(res.status, 429, `A's batch ${round}: ${res.status} ${res.text.slice(0, 200)}`);
    }
    assert.equal(upstream.seen.length, seenBefore, "none of A's refused batches reached the upstream");

    // B cancels its call again: it must still name B's request.
    assert.equal((await post(url, b.key, cancel(7))).status, 202);
    const secondCancel = messagesOf(upstream.seen.at(-1) as Seen)[0];
    assert.equal(secondCancel?.method, 'notifications/cancelled');
    assert.equal(
      secondCancel?.params?.requestId,
      bTag,
      "B's cancellation, after A's refused batches, names a tag no request has",
    );
    for (const r of held) r.destroy();
    await Promise.all([bCall, aCall]);
  });

  it("held: 11,000 of key A's requests that are answered do not evict key B's pending cancellation", async () => {
    const { upstream, held } = await holdingUpstream();
    // Batches are answered whole here (one response per request, in order).
    upstream.set((seen, res) => {
      res.on('error', () => {});
      const ms = messagesOf(seen);
      const one = ms[0];
      if (one?.method === 'tools/call' && (one.params?.arguments as { hold?: boolean } | undefined)?.hold) {
        held.push(res);
        return;
      }
      if (Array.isArray(seen.body)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify(ms.map((m) => ({ jsonrpc: '2.0', id: m.id, result: {} }))));
      }
      if (one?.id === undefined) return void res.writeHead(202).end();
      answerJson(res, one.id);
    });
    const a: KeySpec = { label: 'a', key: newKey() };
    const b: KeySpec = { label: 'b', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [a, b]));
    cleanups.push(async () => void (await gateway.close(100)));
    const url = gateway.mcpUrl;
    const bCall = post(url, b.key, call(7, '"hold":true')).catch(() => undefined);
    await waitFor(() => held.length === 1 || undefined, 5000, "B's call at the upstream");
    const bTag = messagesOf(upstream.seen.at(-1) as Seen)[0]?.id;
    for (let round = 0; round < 11; round++) {
      const batch = `[${Array.from({ length: 1000 }, (_, i) => call(10 + round * 1000 + i)).join(',')}]`;
      const res = await post(url, a.key, batch);
      assert.equal(res.status, 200, `A's batch ${round}: ${res.status} ${res.text.slice(0, 200)}`);
    }
    assert.equal((await post(url, b.key, cancel(7))).status, 202);
    const cancelled = messagesOf(upstream.seen.at(-1) as Seen)[0];
    assert.equal(cancelled?.params?.requestId, bTag, "B's cancellation names B's call");
    for (const r of held) r.destroy();
    await bCall;
  });
});

// -----------------------------------------------------------------------------------------------
// The buffer budget (src/proxy/body-buffer.ts, src/pipeline/read-body.ts)
// -----------------------------------------------------------------------------------------------

describe('review14: the process-wide buffer budget', () => {
  const MIB = 1024 * 1024;
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await gateway?.close(100);
    await upstream?.close();
  });

  it("hole: one key's bodies sent all but their last bytes hold the whole budget; another key's ping gets 503", async () => {
    // failed before: a body's bytes are reserved against the one process-wide max_buffered_bytes as
    // they arrive, with no share per key and no deadline but Node's 60 s requestTimeout. Key A
    // (3 tokens) opens 3 POSTs announcing 1 MiB each, sends all but 10 bytes of each and waits:
    // the budget is spent, and key B's 100-byte ping is refused 503 ERR_OVERLOADED, for as long as
    // A keeps the sockets (A reconnects every minute for 3 tokens).
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const one = messagesOf(seen)[0];
      if (one?.id === undefined) return void res.writeHead(202).end();
      answerJson(res, one.id);
    });
    const a: KeySpec = { label: 'a', key: newKey(), capacity: 3 };
    const b: KeySpec = { label: 'b', key: newKey() };
    gateway = await startTestGateway(
      configFor(upstream.url, [a, b], 'limits:\n  max_body_bytes: 1MiB\n  max_buffered_bytes: 3MiB\n'),
    );
    const u = new URL(gateway.mcpUrl);
    const prefix = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":"';
    const suffix = '"}}}';
    const body = prefix + 'x'.repeat(MIB - prefix.length - suffix.length) + suffix;
    for (let i = 0; i < 3; i++) {
      const socket = connect(Number(u.port), u.hostname);
      socket.on('error', () => {});
      sockets.push(socket);
      socket.write(
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${a.key}\r\n` +
          `Accept: ${ACCEPT}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n` +
          body.slice(0, body.length - 10),
      );
    }
    const g = gateway;
    // Now: a key's bodies may hold a quarter of the budget, at least one body of the largest size
    // (here 1 MiB): A's first body is held, the other two are refused (503) past A's share.
    await waitFor(() => g.budget.used >= body.length - 10 || undefined, 10_000, "A's first body held");
    const res = await post(gateway.mcpUrl, b.key, '{"jsonrpc":"2.0","id":9,"method":"ping"}');
    assert.equal(res.status, 200, `B's ping while A holds ${g.budget.used} bytes: ${res.status} ${res.text}`);
    assert.ok(g.budget.used < 2 * MIB, `A holds ${g.budget.used} bytes`);
    const refused = await waitFor(
      () => {
        const lines = g.auditLines.filter((l) => l.key === 'a' && l.reason === 'ERR_OVERLOADED');
        return lines.length >= 2 ? lines : undefined;
      },
      5000,
      "A's other bodies refused",
    );
    for (const line of refused) assert.equal(line.status, 503);
  });
});

// -----------------------------------------------------------------------------------------------
// Refused before authentication: the id peek (src/pipeline/peek-id.ts, failure.ts withPeekedId)
// -----------------------------------------------------------------------------------------------

describe('review14: requests refused before authentication', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await gateway?.close(100);
    await upstream?.close();
  });

  it("hole: unauthenticated POSTs hold the buffer budget while their id is peeked; a key's ping gets 503", async () => {
    // failed before: a POST without credentials has up to 16 KiB of its body read to find its id for
    // the 401 (peekRequestId), held in the process-wide max_buffered_bytes for up to 1 s
    // (PEEK_TIMEOUT_MS), with no key to charge and no bound per client. 17 connections each
    // sending 16,383 of an announced 16,384 bytes hold a 256 KiB budget, and key B's 41-byte ping
    // gets 503 ERR_OVERLOADED. The budget's size decides how many connections a second it takes
    // (a 1 GiB budget: about 65,536 a second), and nothing charges them.
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const one = messagesOf(seen)[0];
      if (one?.id === undefined) return void res.writeHead(202).end();
      answerJson(res, one.id);
    });
    const b: KeySpec = { label: 'b', key: newKey() };
    gateway = await startTestGateway(configFor(upstream.url, [b], 'limits:\n  max_buffered_bytes: 256KiB\n'));
    const u = new URL(gateway.mcpUrl);
    for (let i = 0; i < 17; i++) {
      const socket = connect(Number(u.port), u.hostname);
      socket.on('error', () => {});
      sockets.push(socket);
      socket.write(
        `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: ${ACCEPT}\r\n` +
          `Content-Type: application/json\r\nContent-Length: 16384\r\n\r\n` +
          ' '.repeat(16383),
      );
    }
    const g = gateway;
    // Now: the peeks read against a budget of their own (a sixteenth of the main one, at least
    // 16 KiB); once it is spent a refusal is answered without its id, and keys' bodies keep theirs.
    await waitFor(() => (g.peekBudget.used > 0 ? true : undefined), 5000, 'peeks held');
    assert.equal(g.budget.used, 0, 'the peeks hold none of the main budget');
    const res = await post(gateway.mcpUrl, b.key, '{"jsonrpc":"2.0","id":9,"method":"ping"}');
    assert.equal(
      res.status,
      200,
      `B's ping while unauthenticated peeks hold ${g.budget.used} bytes: ${res.status} ${res.text}`,
    );
  });
});

// -----------------------------------------------------------------------------------------------
// Task ownership (src/policy/tasks.ts)
// -----------------------------------------------------------------------------------------------

describe('review14: task ownership', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway | undefined;
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it("held: key A creating 1,500 tasks forgets only its own oldest; key B's task stays B's", async () => {
    let n = 0;
    upstream = await startScriptedUpstream();
    upstream.set((seen, res) => {
      const ms = messagesOf(seen);
      const reply = (m: Msg) =>
        m.method === 'tools/call'
          ? { jsonrpc: '2.0', id: m.id, result: { task: { taskId: `t-${++n}`, status: 'working' } } }
          : { jsonrpc: '2.0', id: m.id, result: { taskId: m.params?.taskId, status: 'working' } };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(Array.isArray(seen.body) ? ms.map(reply) : reply(ms[0] as Msg)));
    });
    const a: KeySpec = { label: 'a', key: newKey() };
    const b: KeySpec = { label: 'b', key: newKey() };
    gateway = await startTestGateway(configFor(upstream.url, [a, b]));
    const url = gateway.mcpUrl;
    const task = '"task":{"ttl":60000}';
    const taskCall = (id: number) =>
      `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{},${task}}}`;
    const mine = await post(url, b.key, taskCall(1));
    assert.match(mine.text, /"t-1"/, mine.text);
    for (let round = 0; round < 15; round++) {
      const batch = `[${Array.from({ length: 100 }, (_, i) => taskCall(round * 100 + i)).join(',')}]`;
      const res = await post(url, a.key, batch);
      assert.equal(res.status, 200, res.text.slice(0, 200));
    }
    const get = (id: string) => `{"jsonrpc":"2.0","id":5,"method":"tasks/get","params":{"taskId":"${id}"}}`;
    // A's own first task is forgotten (its cap), B's is not; A cannot read B's.
    const before = upstream.seen.length;
    const aOld = await post(url, a.key, get('t-2'));
    assert.equal(upstream.seen.length, before, `A's oldest task is forgotten: ${aOld.text}`);
    const aOnB = await post(url, a.key, get('t-1'));
    assert.equal(upstream.seen.length, before, `A reads B's task: ${aOnB.text}`);
    const bOwn = await post(url, b.key, get('t-1'));
    assert.equal(upstream.seen.length, before + 1, `B's tasks/get is refused: ${bOwn.text}`);
    assert.match(bOwn.text, /"result"/, bOwn.text);
    // A's newest task is A's (its tasks were recorded).
    const aNew = await post(url, a.key, get(`t-${n}`));
    assert.equal(upstream.seen.length, before + 2, `A's newest task is refused: ${aNew.text}`);
  });
});
