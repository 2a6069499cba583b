/**
 * Client-responses review: the upstream's requests to the client (sampling, elicitation, roots,
 * ping) and the client's answers to them, on the HTTP+SSE transport's GET stream and on Streamable
 * HTTP POSTs. A client's answer keeps the upstream's id, so its id names one of the upstream's
 * requests, never one of the client's own: the gateway must never answer it as if it were a request.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { startRawUpstream } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { idsBefore as ids, legacyClients, messageEvent as event, postAs } from '../helpers/legacy-session.ts';

const ALICE = newKey();
/** A key whose bucket holds one token: a batch of two answers is paid for in part only. */
const TIGHT = newKey();

const SAMPLING = (id: number) => ({
  jsonrpc: '2.0',
  id,
  method: 'sampling/createMessage',
  params: { messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }], maxTokens: 10 },
});

describe('client answers over the HTTP+SSE transport', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  let sid = 0;
  before(async () => {
    upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S${++sid}`);
    gateway = await startTestGateway(
      reviewConfig(
        upstream.url,
        [
          { label: 'alice', key: ALICE, allow: ['echo'] },
          { label: 'tight', key: TIGHT, allow: ['echo'], capacity: 1 },
        ],
        '  transport: sse\nstreams:\n  keepalive: 150ms\n',
        { secret: 'r'.repeat(40), resources: [] },
      ),
    );
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);

  it("failed before: a client's malformed answer to the server's request 0 was refused on its stream as an error for the client's own request 0", async () => {
    // The client's tools/call 0 is at the upstream; the upstream asks the client to sample, as its
    // request 0 (SDK peers both number from 0).
    const a = await open(ALICE);
    const call = { jsonrpc: '2.0', id: 0, method: 'tools/call', params: { name: 'echo', arguments: {} } };
    const { id: tag } = await forwarded(ALICE, a.endpoint, call);
    a.up.res.write(event(SAMPLING(0)));
    assert.deepEqual(await ids(a.stream, a.up), [0], 'the sampling request reaches the client');
    const posts = upstream.posts.length;
    // Its answer holds both result and error: refused, and never forwarded.
    const res = await postAs(ALICE, a.endpoint, {
      jsonrpc: '2.0',
      id: 0,
      result: { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' },
      error: { code: -1, message: 'x' },
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { id: unknown; error: { code: number } };
    // The refusal names no request: the answer it refuses is not one (JSON-RPC never answers one).
    assert.equal(body.id, null);
    assert.equal(body.error.code, -32600);
    assert.equal(upstream.posts.length, posts);
    // Nothing on the stream: an error with id 0 there was the client's tools/call 0 failing, and
    // the call's real answer, when it came, an answer to nothing (the SDK client drops it).
    a.up.res.write(event({ jsonrpc: '2.0', id: tag, result: { content: [] } }));
    assert.deepEqual(await ids(a.stream, a.up), [0]);
    const line = gateway.auditLines.findLast((l) => l.http_method === 'POST')!;
    assert.equal(line.status, 400);
    assert.equal(line.decision, 'invalid');
    assert.equal(line.reason, 'ERR_INVALID_REQUEST');
  });

  it("holds: a batch of answers refused for the key's bucket puts no 429 for the client's own request 1 on its stream", async () => {
    const a = await open(TIGHT);
    await new Promise((r) => setTimeout(r, 1100)); // the stream's token back
    const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } };
    const { id: tag } = await forwarded(TIGHT, a.endpoint, call);
    a.up.res.write(event(SAMPLING(1)));
    a.up.res.write(event({ jsonrpc: '2.0', id: 2, method: 'roots/list' }));
    assert.deepEqual(await ids(a.stream, a.up), [1, 2]);
    await new Promise((r) => setTimeout(r, 1100));
    const posts = upstream.posts.length;
    const res = await postAs(TIGHT, a.endpoint, [
      {
        jsonrpc: '2.0',
        id: 1,
        result: { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' },
      },
      { jsonrpc: '2.0', id: 2, result: { roots: [] } },
    ]);
    assert.equal(res.status, 429);
    const body = (await res.json()) as { id: unknown };
    assert.equal(body.id, null);
    assert.equal(upstream.posts.length, posts);
    a.up.res.write(event({ jsonrpc: '2.0', id: tag, result: { content: [] } }));
    assert.deepEqual(await ids(a.stream, a.up), [1], "only the call's own answer");
  });
});

describe('client answers over Streamable HTTP', () => {
  let upstream: RawUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'alice', key: ALICE, allow: ['echo'] }], '', {
        secret: 'r'.repeat(40),
        resources: [],
      }),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function post(body: string, key = ALICE): Promise<{ status: number; body: { id: unknown } }> {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body,
    });
    return { status: res.status, body: (await res.json()) as { id: unknown } };
  }

  it("failed before: the refusal of a client's answer carried the server request's id, which a client reads as its own request's", async () => {
    const seen = upstream.seen.length;
    // Invalid after its body is read (an unknown member beside the result) ...
    const invalid = await post('{"jsonrpc":"2.0","id":3,"result":{},"Method":"tools/call"}');
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.id, null);
    // ... and refused before (a wrong key: its id is peeked from the body).
    const unknown = await post('{"jsonrpc":"2.0","id":4,"result":{}}', newKey());
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.id, null);
    assert.equal(upstream.seen.length, seen);
    // A request's refusal still carries its id.
    const request = await post('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":7}}');
    assert.equal(request.body.id, 5);
  });
});
