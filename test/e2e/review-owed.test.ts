/**
 * Attack review "owed": every request gets an answer, and its audit line tells the truth, when the
 * upstream fails it (src/proxy/relay.ts, sse-rewrite.ts, integrity/match.ts). The upstream ends an
 * SSE answer, or its connection drops, before every request in it was answered; it answers an
 * error status with a body that holds no response, or one the gateway cannot read. "hole:" tests
 * failed before their fix; "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import {
  Client as Client2,
  ProtocolError,
  StreamableHTTPClientTransport as Transport2,
} from '@modelcontextprotocol/client';
import {
  answerRequests,
  callTool,
  postBody,
  startRawUpstreamGateway,
  withBody,
} from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const INFO = { name: 'review-owed', version: '1.0.0' };
const NOTICE = JSON.stringify({
  jsonrpc: '2.0',
  method: 'notifications/message',
  params: { level: 'info', data: 'working' },
});

/** How the upstream answers a tools/call (initialize is answered as JSON). */
type Answer = (tag: string, res: ServerResponse) => void;

/** The audit line of the `n`th tools/call (from 0), once it is written. */
async function callLine(raw: RawUpstreamGateway, n: number): Promise<Record<string, unknown>> {
  for (let waited = 0; waited < 3000; waited += 10) {
    const lines = raw.gateway.auditLines.filter((l) => l.rpc_method === 'tools/call');
    if (lines[n] !== undefined) return lines[n];
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no audit line for tools/call ${n}`);
}

/** The data of each event of an SSE body, as JSON. */
function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block.includes('data: '))
    .map((block) => JSON.parse(block.slice(block.indexOf('data: ') + 6)) as unknown);
}

describe('owed review: an SSE answer that ends before it answered', () => {
  let raw: RawUpstreamGateway;
  let answer: Answer = () => {};
  let calls = 0;
  before(async () => {
    const listener = answerRequests((m, res) => {
      if (m.method === 'initialize') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: m.id,
            result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: INFO },
          }),
        );
        return;
      }
      answer(m.id, res);
    });
    // No GET stream; the client's DELETE at close is answered.
    raw = await startRawUpstreamGateway(
      (req, res) => (req.method === 'POST' ? listener(req, res) : res.writeHead(405).end()),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  /** A call through the SDK v1 client: what it rejected with, and how long it waited. */
  async function sdkCall(): Promise<{ err: unknown; ms: number }> {
    const client = new Client(INFO);
    await client.connect(
      new StreamableHTTPClientTransport(new URL(raw.gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    const started = Date.now();
    try {
      await client.callTool({ name: 'echo', arguments: {} }, undefined, { timeout: 2000 });
      return { err: undefined, ms: Date.now() - started };
    } catch (err) {
      return { err, ms: Date.now() - started };
    } finally {
      await client.close().catch(() => {});
    }
  }

  it('hole: a stream of a log message, then its end: the SDK client waited for its answer until its own timeout, and the line said allow', async () => {
    // failed before: the rewriter owed errors only to a stream that carried no event at all; after
    // any event (a log message, progress) it added none. The SDK client resumes only at an event id,
    // so it had nothing to wait on but its timeout (-32001 after 2 s); the line said `allow`.
    answer = (_tag, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`event: message\ndata: ${NOTICE}\n\n`);
    };
    const { err, ms } = await sdkCall();
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, -32002, err.message);
    assert.match(err.message, /upstream ended the stream without an answer/);
    assert.ok(ms < 1500, `answered after ${ms} ms`);
    const line = await callLine(raw, calls++);
    assert.equal(line.decision, 'upstream_error');
    assert.equal(line.reason, 'ERR_UPSTREAM_PROTOCOL');
  });

  it('hole: the same stream through the 2.x client (@modelcontextprotocol/client): it waited for its timeout too', async () => {
    // failed before: ProtocolError -32001 (request timed out) after 2 s.
    answer = (_tag, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${NOTICE}\n\n`);
      setTimeout(() => res.end(`data: ${NOTICE}\n\n`), 20);
    };
    const client = new Client2(INFO);
    await client.connect(
      new Transport2(new URL(raw.gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    const started = Date.now();
    try {
      await assert.rejects(
        client.callTool({ name: 'echo', arguments: {} }, { timeout: 2000 }),
        (err: unknown) => {
          assert.ok(err instanceof ProtocolError, String(err));
          assert.equal(err.code, -32002, err.message);
          return true;
        },
      );
      assert.ok(Date.now() - started < 1500);
    } finally {
      await client.close().catch(() => {});
    }
    const line = await callLine(raw, calls++);
    assert.equal(line.decision, 'upstream_error');
  });

  it('hole: the upstream\u2019s connection dropped mid-stream: the client\u2019s stream was cut with no error, and the SDK client waited for its timeout', async () => {
    // failed before: onDone's sendError found the head sent and destroyed the response: the SDK
    // client (no event id to resume at) saw a disconnect and waited 2 s for -32001.
    answer = (_tag, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: message\ndata: ${NOTICE}\n\n`);
      setTimeout(() => res.socket?.destroy(), 30);
    };
    const { err, ms } = await sdkCall();
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, -32002, err.message);
    assert.ok(ms < 1500, `answered after ${ms} ms`);
    const line = await callLine(raw, calls++);
    assert.equal(line.decision, 'upstream_error');
    assert.equal(line.reason, 'ERR_UPSTREAM_UNAVAILABLE');
    assert.equal(line.aborted, false);
    assert.equal(line.status, 200);
  });

  it('hole: a batch whose stream answered one request, then dropped mid-event: the other id got nothing', async () => {
    // failed before: the stream was cut (fetch: "terminated"); the answer to `a` arrived, `b` none.
    answer = () => {};
    const batch = [
      { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: {} } },
      { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'echo', arguments: {} } },
    ];
    const upstream = withBody((body, res) => {
      const tags = (JSON.parse(body.toString()) as { id: string }[]).map((m) => m.id);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // The answer to `a`, then an event cut before its data (the client dispatches none of it).
      res.write(`data: {"jsonrpc":"2.0","id":"${tags[0]}","result":{"content":[]}}\n\nevent: message\n`);
      setTimeout(() => res.socket?.destroy(), 30);
    });
    const own = await startRawUpstreamGateway(upstream, KEY, ['echo']);
    try {
      const res = await postBody(own, KEY, JSON.stringify(batch));
      assert.equal(res.status, 200);
      const got = events(await res.text());
      assert.deepEqual(got, [
        { jsonrpc: '2.0', id: 'a', result: { content: [] } },
        { jsonrpc: '2.0', id: 'b', error: { code: -32002, message: 'upstream unavailable' } },
      ]);
      const line = own.gateway.auditLines.at(-1);
      assert.equal(line?.decision, 'upstream_error');
      assert.equal(line?.reason, 'ERR_UPSTREAM_UNAVAILABLE');
    } finally {
      await own.close();
    }
  });

  it('hole: a result event refused after its request was taken as answered (a repeated result) left the call owed nothing: the SDK client waited for its timeout', async () => {
    // failed before: restoreEdits took the tag as answered, then refused the message (a first-wins
    // client reads the other `result`): the client got the gateway's error naming no request (id
    // null, which the SDK matches to no call), and the stream's end owed the call nothing.
    answer = (tag, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const sub = 'io.modelcontextprotocol/subscriptionId';
      res.end(
        `event: message\ndata: {"jsonrpc":"2.0","id":"${tag}","result":{"_meta":{"${sub}":"${tag}"}},"result":{"content":[]}}\n\n`,
      );
    };
    const { err, ms } = await sdkCall();
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, -32002, err.message);
    assert.ok(ms < 1500, `answered after ${ms} ms`);
    const line = await callLine(raw, calls++);
    assert.equal(line.decision, 'upstream_error');
  });

  it('holds: a stream that gave the client an event id (a priming event) and ended owes nothing: the client resumes it', async () => {
    answer = (_tag, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`id: p0\ndata: \n\nevent: message\ndata: ${NOTICE}\n\n`);
    };
    const res = await callTool(raw, KEY, 5);
    const text = await res.text();
    assert.doesNotMatch(text, /"error"/);
    assert.match(text, /^id: \S+\ndata: \n\n/);
    const line = await callLine(raw, calls++);
    assert.equal(line.decision, 'allow');
  });
});

describe('owed review: a call its client cancelled', () => {
  it('holds: the upstream that ends its stream unanswered (as it should) is not blamed: the request gets `request cancelled`, and the line says allow', async () => {
    // Guards the first review-owed fix: a stream without an answer owes its requests an error, but
    // not one blaming the upstream for a request the client cancelled (the upstream SHOULD NOT
    // answer it). Its error says it was cancelled (review-owed2: the cancellation may have been
    // another client's of the same key, sharing its ids without a session).
    const held = new Map<string, ServerResponse>();
    const upstream = withBody((body, res) => {
      const m = JSON.parse(body.toString()) as {
        id?: string;
        method: string;
        params?: { requestId?: string };
      };
      if (m.id === undefined) {
        res.writeHead(202).end();
        if (m.method === 'notifications/cancelled') held.get(m.params?.requestId ?? '')?.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: message\ndata: ${NOTICE}\n\n`);
      held.set(m.id, res);
    });
    const own = await startRawUpstreamGateway(upstream, KEY, ['echo']);
    try {
      const call = await callTool(own, KEY, 21);
      const reader = call.body!.getReader();
      let text = Buffer.from((await reader.read()).value ?? []).toString();
      const cancel = await postBody(
        own,
        KEY,
        JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 21 } }),
      );
      assert.equal(cancel.status, 202);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
      assert.equal(
        text,
        `event: message\ndata: ${NOTICE}\n\n` +
          'data: {"jsonrpc":"2.0","id":21,"error":{"code":-32002,"message":"request cancelled"}}\n\n',
      );
      for (let waited = 0; waited < 2000 && own.gateway.auditLines.length < 2; waited += 10)
        await new Promise((r) => setTimeout(r, 10));
      const line = own.gateway.auditLines.find((l) => l.rpc_method === 'tools/call');
      assert.equal(line?.decision, 'allow');
      assert.equal(line?.reason, undefined);
    } finally {
      await own.close();
    }
  });
});

describe('owed review: an event the gateway cannot hold, after an answer in the same chunk', () => {
  it('hole: the answer judged in that chunk was lost with the refused event: the client got a cut stream and no answer', async () => {
    // failed before: push() judged the answer, then threw on the chunk's unfinished event (over
    // limits.max_buffered_bytes): its output, the answer included, was dropped, and the stream cut.
    // The answer was taken as given, so the stream's end owed no error for it either.
    const big = 'x'.repeat(40 * 1024);
    const upstream = withBody((body, res) => {
      const tag = (JSON.parse(body.toString()) as { id: string }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: {"jsonrpc":"2.0","id":"${tag}","result":{"content":[]}}\n\ndata: "${big}`);
      // (The gateway aborts the exchange; nothing more comes.)
    });
    const http = await startRawUpstreamGateway(upstream, KEY, ['echo']);
    await http.gateway.close(100);
    const gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${http.upstreamUrl}
limits:
  max_buffered_bytes: 16KiB
auth:
  session_secret: "${'s'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["echo"]
`);
    try {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'echo', arguments: {} },
        }),
      });
      assert.equal(res.status, 200);
      const got = events(await res.text());
      assert.deepEqual(got, [{ jsonrpc: '2.0', id: 3, result: { content: [] } }]);
      const line = gateway.auditLines.at(-1);
      assert.equal(line?.decision, 'upstream_error');
      assert.equal(line?.reason, 'ERR_OVERLOADED');
    } finally {
      await gateway.close(100);
      await http.close();
    }
  });
});

describe('owed review: an error status whose body answers nothing', () => {
  let raw: RawUpstreamGateway;
  let answer: Answer = () => {};
  before(async () => {
    raw = await startRawUpstreamGateway(
      withBody((body, res) => answer((JSON.parse(body.toString()) as { id: string }).id, res)),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: a server\u2019s ping (or a log message) under a 500 or a 400 passed as it is: no JSON-RPC error for the client\u2019s id', async () => {
    // failed before: the body passed untouched ({"id":"srv-1","method":"ping"}); the client got no
    // error for id 7, and the line of the 400 said `allow`.
    const bodies = [
      JSON.stringify({ jsonrpc: '2.0', id: 'srv-1', method: 'ping' }),
      NOTICE,
      // Large enough for the list path (list-match.ts).
      JSON.stringify({
        jsonrpc: '2.0',
        method: 'notifications/message',
        params: { data: 'y'.repeat(70000) },
      }),
    ];
    for (const status of [500, 400]) {
      for (const body of bodies) {
        answer = (_tag, res) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(body);
        };
        const res = await callTool(raw, KEY, 7);
        assert.equal(res.status, status);
        assert.deepEqual(await res.json(), {
          jsonrpc: '2.0',
          id: 7,
          error: { code: -32002, message: `upstream answered ${status} with no response to the request` },
        });
        const line = raw.gateway.auditLines.at(-1);
        assert.equal(line?.decision, 'upstream_error');
        assert.equal(line?.reason, 'ERR_UPSTREAM_PROTOCOL');
      }
    }
  });

  it('holds: the upstream\u2019s own error under a 400 (id null, or the request\u2019s) passes as it is', async () => {
    for (const id of ['null', 'TAG']) {
      answer = (tag, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        const named = id === 'null' ? 'null' : JSON.stringify(tag);
        res.end(`{"jsonrpc":"2.0","id":${named},"error":{"code":-32000,"message":"Bad Request: nope"}}`);
      };
      const res = await callTool(raw, KEY, 8);
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: id === 'null' ? null : 8,
        error: { code: -32000, message: 'Bad Request: nope' },
      });
    }
  });

  it('hole: a 404 with a body the gateway cannot read (HTML) got the gateway\u2019s own error, but its line said allow with no reason', async () => {
    // failed before: decision "allow", no reason: the line said nothing of the body dropped for the
    // gateway's own error (a 5xx said upstream_error, from its status alone, with no reason either).
    for (const [status, type, body] of [
      [404, 'text/html', '<h1>Not here</h1>'],
      [503, 'text/html', '<h1>Busy</h1>'],
      // An empty body that says JSON (held, then replaced).
      [400, 'application/json', ''],
    ] as const) {
      answer = (_tag, res) => {
        res.writeHead(status, { 'content-type': type });
        res.end(body);
      };
      const res = await callTool(raw, KEY, 9);
      assert.equal(res.status, status);
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32002, message: `upstream answered ${status}` },
      });
      const line = raw.gateway.auditLines.at(-1);
      assert.equal(line?.decision, 'upstream_error');
      assert.equal(line?.reason, 'ERR_UPSTREAM_PROTOCOL');
    }
  });
});

describe('owed review: an error status whose JSON body the gateway refuses', () => {
  let raw: RawUpstreamGateway;
  let answer: Answer = () => {};
  before(async () => {
    raw = await startRawUpstreamGateway(
      withBody((body, res) => answer((JSON.parse(body.toString()) as { id: string }).id, res)),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: a 404 whose body says JSON but is none (or answers no request) became a 502: the client lost the status that says its session is gone', async () => {
    // failed before: 502 with the refusal, where the same body typed text/html kept its 404. A
    // client must start a new session on a 404 (Streamable HTTP); told 502, it never does.
    for (const body of [
      'Session not found',
      '"Session not found"',
      '{"jsonrpc":"2.0","id":"x1","result":{}}',
    ]) {
      answer = (_tag, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(body);
      };
      const res = await callTool(raw, KEY, 11);
      assert.equal(res.status, 404, body);
      const got = (await res.json()) as { id: unknown; error: { code: number } };
      assert.equal(got.id, 11);
      assert.equal(got.error.code, -32002);
      const line = raw.gateway.auditLines.at(-1);
      assert.equal(line?.status, 404);
      assert.equal(line?.decision, 'upstream_error');
      assert.equal(line?.reason, 'ERR_UPSTREAM_PROTOCOL');
    }
  });

  it('holds: a 2xx body the gateway refuses is still answered 502', async () => {
    answer = (_tag, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":"x1","result":{}}');
    };
    const res = await callTool(raw, KEY, 12);
    assert.equal(res.status, 502);
  });
});
