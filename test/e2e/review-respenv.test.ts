/**
 * Attack review of the response envelope from a hostile upstream (src/proxy/relay.ts, sse-rewrite.ts,
 * integrity/match.ts): what a client reads of an answer the gateway judged. "hole:" tests failed
 * before their fix; "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { answerRequests, answerTagged, callTool, startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));
const HIDDEN = 'file:///secret.txt';
const UPDATED = 'notifications/resources/updated';
const INFO = { name: 'review-respenv', version: '1.0.0' };
const NOTICE = JSON.stringify({
  jsonrpc: '2.0',
  method: 'notifications/message',
  params: { level: 'info', data: 'x' },
});

interface ReadEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * An SSE stream as a client that splits lines at LF only reads it: the official Go SDK's scanEvents
 * (modelcontextprotocol/go-sdk mcp/event.go: ReadBytes('\n'), the line's trailing CR and LF trimmed,
 * the field cut at its first colon, each value trimmed, consecutive data lines joined with LF; a
 * pending event is dispatched at the end). mcp-go's readSSE splits its lines the same way.
 */
function lfOnlyEvents(text: string): ReadEvent[] {
  const events: ReadEvent[] = [];
  let event = '';
  let data: string[] | undefined;
  const dispatch = () => {
    if (data !== undefined) events.push({ event, data: data.join('\n') });
    event = '';
    data = undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[\r\n]+$/, '');
    if (line === '') {
      dispatch();
      continue;
    }
    const colon = line.indexOf(':');
    if (colon === -1) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (field === 'event') event = value;
    else if (field === 'data') (data ??= []).push(value);
  }
  dispatch();
  return events;
}

/** The upstream answers each request with an SSE stream of `body` (`TAG` replaced by the request's tag). */
function sseAnswer(body: () => string) {
  return answerTagged((tag: string, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(body().replaceAll('TAG', tag));
  });
}

describe('response envelope review: SSE line ends', () => {
  let raw: RawUpstreamGateway;
  let body = '';
  before(async () => {
    raw = await startRawUpstreamGateway(
      sseAnswer(() => body),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  const RESULT = 'data: {"jsonrpc":"2.0","id":"TAG","result":{"content":[]}}\n\n';

  it('hole: a lone CR hid a line from the gateway that an LF-only client (the Go SDK) joins into its data: a hidden resource\u2019s update reached it', async () => {
    // The gateway reads `data: {..."params":{`, a line `"uri":...` (an unknown field) and `data: }}`:
    // an update naming no URI, which passes. A client splitting at LF reads one data line up to the
    // LF, CR and all: `{..."params":{\r"uri":"file:///secret.txt"\n}}`, valid JSON.
    body =
      `data: {"jsonrpc":"2.0","method":"${UPDATED}","params":{\r"uri":"${HIDDEN}"\ndata: }}\n\n` + RESULT;
    const res = await callTool(raw, KEY, 7);
    assert.equal(res.status, 200);
    const text = await res.text();
    const events = lfOnlyEvents(text);
    for (const e of events) {
      const message = JSON.parse(e.data) as { method?: string; params?: { uri?: string } };
      assert.notEqual(message.params?.uri, HIDDEN, `an LF-only client read ${e.data}`);
    }
    assert.doesNotMatch(text, /\r(?!\n)/);
    // The answer still reaches the client, with its own id.
    assert.deepEqual(JSON.parse(events.at(-1)?.data ?? ''), {
      jsonrpc: '2.0',
      id: 7,
      result: { content: [] },
    });
  });
});

/** The audit line of the `n`th tools/call (from 0), once it is written. */
async function callLine(raw: RawUpstreamGateway, n: number): Promise<Record<string, unknown>> {
  for (let waited = 0; waited < 2000; waited += 10) {
    const lines = raw.gateway.auditLines.filter((l) => l.rpc_method === 'tools/call');
    if (lines[n] !== undefined) return lines[n];
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no audit line for tools/call ${n}`);
}

describe('response envelope review: a stream that ends without an answer', () => {
  let raw: RawUpstreamGateway;
  /** What the upstream writes on the tools/call stream before it ends it, with what status and type. */
  let tail = '';
  let status = 200;
  let type = 'text/event-stream';
  before(async () => {
    const answer = answerRequests((m, res) => {
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
      res.writeHead(status, { 'content-type': type });
      res.end(tail);
    });
    // No GET stream; the client's DELETE at close is answered.
    raw = await startRawUpstreamGateway(
      (req, res) => (req.method === 'POST' ? answer(req, res) : res.writeHead(405).end()),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: the error owed for an unanswered call was written onto the upstream\u2019s unfinished last line (a comment, an empty id): the SDK client waited', async () => {
    const client = new Client(INFO);
    await client.connect(
      new StreamableHTTPClientTransport(new URL(raw.gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    let calls = 0;
    try {
      // `: c` (a comment), `id:` (an empty id), `data: {...}` of a notification: none dispatches an
      // event for a conforming client when the stream ends in it.
      for (const unfinished of [': c', 'id:', 'retry: 10\r', `data: ${NOTICE}`]) {
        tail = unfinished;
        const started = Date.now();
        await assert.rejects(
          client.callTool({ name: 'echo', arguments: {} }, undefined, { timeout: 3000 }),
          (err: unknown) => {
            assert.ok(err instanceof McpError, String(err));
            assert.equal(err.code, -32002, `${JSON.stringify(unfinished)}: ${err.message}`);
            assert.match(err.message, /upstream ended the stream without an answer/);
            return true;
          },
        );
        assert.ok(Date.now() - started < 2000);
        // (The client has the error before the gateway ends the stream and writes the line.)
        const line = await callLine(raw, calls++);
        assert.equal(line.decision, 'upstream_error');
        assert.equal(line.reason, 'ERR_UPSTREAM_PROTOCOL');
      }
    } finally {
      await client.close();
    }
  });

  it('hole: a 204 with an SSE type reached the SDK client as a stream: it waited for an answer a 204 cannot carry (and the audit line counted an error event never sent)', async () => {
    const client = new Client(INFO);
    await client.connect(
      new StreamableHTTPClientTransport(new URL(raw.gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    const before = raw.gateway.auditLines.filter((l) => l.rpc_method === 'tools/call').length;
    try {
      for (const t of ['text/event-stream', 'application/json']) {
        [status, type, tail] = [204, t, ''];
        const started = Date.now();
        await assert.rejects(
          client.callTool({ name: 'echo', arguments: {} }, undefined, { timeout: 3000 }),
          (err: unknown) => {
            // The client gives up at once (no body of either type), not at its own timeout.
            assert.doesNotMatch(String(err), /timed out/i, t);
            return true;
          },
        );
        assert.ok(Date.now() - started < 2000, t);
      }
      // A 204 carries no answer, and Streamable HTTP owes the call one in the body: 502 with the
      // call's error (no stream, no error event written to a response that has no body).
      const res = await callTool(raw, KEY, 9);
      assert.equal(res.status, 502);
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: 9,
        error: { code: -32002, message: 'upstream answered 204 to a request it must answer' },
      });
      const line = await callLine(raw, before + 2);
      assert.equal(line.status, 502);
      assert.equal(line.reason, 'ERR_UPSTREAM_PROTOCOL');
    } finally {
      [status, type, tail] = [200, 'text/event-stream', ''];
      await client.close();
    }
  });
});

describe('response envelope review: error statuses', () => {
  let raw: RawUpstreamGateway;
  let answer: (tag: string, res: ServerResponse) => void = () => {};
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => answer(tag, res)),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: an error status with an empty body typed JSON reached the client as an empty "JSON" body, no JSON-RPC error in it', async () => {
    for (const status of [400, 404, 500]) {
      answer = (_tag, res) => void res.writeHead(status, { 'content-type': 'application/json' }).end();
      const res = await callTool(raw, KEY, 11);
      assert.equal(res.status, status);
      assert.equal(res.headers.get('content-type'), 'application/json');
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32002, message: `upstream answered ${status}` },
      });
      assert.equal(raw.gateway.auditLines.at(-1)?.status, status);
    }
  });

  it('holds: an error status whose JSON body answers the call passes with the client id', async () => {
    answer = (tag, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: tag, error: { code: -32602, message: 'bad' } }));
    };
    const res = await callTool(raw, KEY, 12);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { jsonrpc: '2.0', id: 12, error: { code: -32602, message: 'bad' } });
  });
});
