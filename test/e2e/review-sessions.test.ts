/**
 * Attack review of Streamable HTTP sessions and resumption: session binding, sealed event ids,
 * GET streams and 2026-07-28 `subscriptions/listen` streams held open, ended by a key's expiry, a
 * reload or a shutdown, DELETE, and the stateless revision mixed with a 2025 session.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { waitFor } from '../helpers/net.ts';

const SECRET = 'r'.repeat(40);
const PUBLIC = 'file:///public/a.txt';
const configFor = (url: string, keys: readonly KeySpec[]) =>
  reviewConfig(url, keys, '', { secret: SECRET, resources: ['file:///public/*'] });
const LISTEN = (id: number) =>
  `{"jsonrpc":"2.0","id":${id},"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"},"notifications":{"resourceSubscriptions":["${PUBLIC}"]}}}`;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** A GET stream (or, with `body`, a POST) read to its end. */
async function open(url: string, key: string, body?: string): Promise<Answer> {
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The request's audit line, once it is written, and checked to be its only one. */
async function lineOf(gw: TestGateway, answer: Answer) {
  const id = answer.headers.get('x-request-id');
  const line = await waitFor(() => gw.auditLines.find((l) => l.request_id === id), 3000, 'the audit line');
  // The upstream side is given up after the refusal: its end must not write a second line.
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(gw.auditLines.filter((l) => l.request_id === id).length, 1, 'one audit line per request');
  return line;
}

describe('sessions review: a stream ended by the gateway before the upstream answered it', () => {
  let upstream: ScriptedUpstream;
  /** Streams the upstream holds without ever answering their headers. */
  const waiting: ServerResponse[] = [];
  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((_seen: Seen, res) => void waiting.push(res));
  });
  after(async () => {
    for (const res of waiting) res.destroy();
    await upstream.close();
  });

  for (const kind of ['GET stream', 'subscriptions/listen'] as const) {
    it(`failed before: a ${kind} whose key expired before the upstream answered got 200 with an empty body and an 'allow' line`, async () => {
      // The key is valid when the stream opens (so it is forwarded and held), and expires while the
      // upstream has not sent its answer's headers: the expiry watch ended it with res.end(), which
      // wrote a bare 200 (no Content-Type, no body) that a client reads as an empty stream (GET) or
      // a missing JSON-RPC answer (listen), and the audit line said `allow`, 200.
      const key = newKey();
      const expires = new Date(Date.now() + 1200).toISOString();
      const gw = await startTestGateway(configFor(upstream.url, [{ label: 'soon', key, expires }]));
      try {
        const before = waiting.length;
        const pending = open(gw.mcpUrl, key, kind === 'GET stream' ? undefined : LISTEN(7));
        await waitFor(() => waiting.length > before || undefined, 3000, 'the stream at the upstream');
        const answer = await pending;
        assert.equal(answer.status, 401, answer.text);
        assert.equal(answer.headers.get('www-authenticate'), 'Bearer realm="mcpgate"');
        const body = JSON.parse(answer.text) as { id: unknown; error: { code: number } };
        assert.equal(body.error.code, -32001);
        assert.equal(body.id, kind === 'GET stream' ? null : 7);
        const line = await lineOf(gw, answer);
        assert.equal(line.status, 401);
        assert.equal(line.decision, 'unauthenticated');
        assert.equal(line.reason, 'ERR_STREAM_EXPIRED');
        // Its upstream side was given up.
        await waitFor(() => waiting.at(-1)?.destroyed || undefined, 3000, 'the upstream side cancelled');
      } finally {
        await gw.close(200);
      }
    });
  }

  it("failed before: a GET stream waiting on the upstream when a reload removed its key (or changed it) got 200 with an empty body and an 'allow' line", async () => {
    const gone: KeySpec = { label: 'gone', key: newKey() };
    const changed: KeySpec = { label: 'changed', key: newKey(), allow: ['echo'] };
    const gw = await startTestGateway(configFor(upstream.url, [gone, changed]));
    try {
      const before = waiting.length;
      const pendingGone = open(gw.mcpUrl, gone.key);
      const pendingChanged = open(gw.mcpUrl, changed.key);
      await waitFor(() => waiting.length >= before + 2 || undefined, 3000, 'both streams at the upstream');
      const next = parseConfigText(
        configFor(upstream.url, [{ ...changed, allow: ['echo', 'add'] }]),
        {},
        Date.now(),
      );
      assert.ok(next.config);
      const reloaded = await gw.runtime.reload(next.config);
      assert.equal(reloaded.applied, true);
      // The removed key: the refusal any request of it now gets.
      const refused = await pendingGone;
      assert.equal(refused.status, 401, refused.text);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="mcpgate"');
      assert.equal((JSON.parse(refused.text) as { error: { code: number } }).error.code, -32001);
      const refusedLine = await lineOf(gw, refused);
      assert.equal(refusedLine.decision, 'unauthenticated');
      assert.equal(refusedLine.reason, 'ERR_AUTH_UNKNOWN_KEY');
      // The changed key: opened again, it is judged by the new config.
      const retry = await pendingChanged;
      assert.equal(retry.status, 503, retry.text);
      assert.equal(retry.headers.get('retry-after'), '1');
      const retryLine = await lineOf(gw, retry);
      assert.equal(retryLine.status, 503);
      assert.equal(retryLine.reason, 'ERR_CONFIG_RELOADED');
    } finally {
      await gw.close(200);
    }
  });

  it('failed before: a GET stream waiting on the upstream at shutdown got 200 with an empty body', async () => {
    const key = newKey();
    const gw = await startTestGateway(configFor(upstream.url, [{ label: 'k', key }]));
    const before = waiting.length;
    const pending = open(gw.mcpUrl, key);
    await waitFor(() => waiting.length > before || undefined, 3000, 'the stream at the upstream');
    await gw.close(500);
    const answer = await pending;
    assert.equal(answer.status, 503, answer.text);
    assert.equal((JSON.parse(answer.text) as { error: { code: number } }).error.code, -32003);
    const line = await lineOf(gw, answer);
    assert.equal(line.reason, 'ERR_SHUTTING_DOWN');
  });
});

describe('sessions review: what a session id and an event id carry to the upstream', () => {
  let upstream: ScriptedUpstream;
  let gw: TestGateway;
  const alice = newKey();
  const bob = newKey();
  before(async () => {
    upstream = await startScriptedUpstream();
    // Each POST is answered as SSE, in a new upstream session, with an event id holding a non-ASCII
    // character.
    let n = 0;
    upstream.set((seen, res) => {
      if (seen.method !== 'POST')
        return void res.writeHead(200, { 'content-type': 'text/event-stream' }).end();
      const id = (seen.body as { id?: unknown }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': `up-${++n}` });
      res.end(`id: é-${n}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: {} })}\n\n`);
    });
    gw = await startTestGateway(
      configFor(upstream.url, [
        { label: 'alice', key: alice },
        { label: 'bob', key: bob },
      ]),
    );
  });
  after(async () => {
    await gw.close(200);
    await upstream.close();
  });

  async function initialize(key: string): Promise<{ session: string; eventId: string }> {
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key}`,
      },
      body: '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"r","version":"1"}}}',
    });
    const text = await res.text();
    return { session: res.headers.get('mcp-session-id') ?? '', eventId: /^id: (.*)$/m.exec(text)?.[1] ?? '' };
  }
  async function request(method: string, key: string, headers: Record<string, string>, body?: string) {
    const res = await fetch(gw.mcpUrl, {
      method,
      headers: {
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body }),
    });
    return { status: res.status, text: await res.text() };
  }

  it('holds: a sealed Last-Event-ID reaches the upstream only on a GET, opened; never on a DELETE, never for another key', async () => {
    const a = await initialize(alice);
    const b = await initialize(bob);
    assert.match(a.session, /^up-\d+\.[\w-]{22}$/);
    // An initialize's stream: its ids carry its answer's digest too (event-ids.ts sealOpening).
    assert.match(a.eventId, /^é-\d+\.[\w-]{22}\.[\w-]{16}$/);
    const mark = upstream.seen.length;
    // The GET resumes at the upstream's own id (fetch sends é as its latin1 byte, which is how the
    // gateway reads it).
    const resumed = await request('GET', alice, { 'mcp-session-id': a.session, 'last-event-id': a.eventId });
    assert.equal(resumed.status, 200);
    assert.equal(upstream.seen.at(-1)?.headers['last-event-id'], a.eventId.slice(0, -40));
    assert.equal(upstream.seen.at(-1)?.headers['mcp-session-id'], a.session.slice(0, -23));
    // A DELETE carrying one forwards none.
    const deleted = await request('DELETE', alice, {
      'mcp-session-id': a.session,
      'last-event-id': a.eventId,
    });
    assert.equal(deleted.status, 200);
    assert.equal(upstream.seen.at(-1)?.method, 'DELETE');
    assert.equal(upstream.seen.at(-1)?.headers['last-event-id'], undefined);
    // Bob, in his own session, with alice's seal: refused before the upstream.
    const seen = upstream.seen.length;
    const stolen = await request('GET', bob, { 'mcp-session-id': b.session, 'last-event-id': a.eventId });
    assert.equal(stolen.status, 400);
    assert.equal(upstream.seen.length, seen);
    assert.equal(upstream.seen.length, mark + 2);
  });

  it("holds: a 2026-07-28 request or listen carrying another key's session id never reaches the upstream", async () => {
    const a = await initialize(alice);
    const seen = upstream.seen.length;
    const call =
      '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}';
    for (const body of [call, LISTEN(4)]) {
      const answer = await request(
        'POST',
        bob,
        { 'mcp-session-id': a.session, 'mcp-protocol-version': '2026-07-28' },
        body,
      );
      assert.equal(answer.status, 404, answer.text);
    }
    assert.equal(upstream.seen.length, seen);
  });
});
