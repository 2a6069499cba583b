/**
 * Named security regressions for what crosses from the upstream to the client around a body: the
 * response headers are an allowlist, and a body the gateway could not read (encoded, or neither JSON
 * nor SSE) never reaches the client, whatever its status. Each attack lets a raw upstream answer a
 * `tools/list` with a hidden tool in it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));

type Answer = (id: unknown, res: ServerResponse) => void;

function listWithHidden(id: unknown): string {
  return JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'echo' }, { name: 'secret' }] } });
}

describe('the response envelope', () => {
  let upstream: Server;
  let gateway: TestGateway;
  let answer: Answer = () => {};
  let onDelete: (res: ServerResponse) => void = (res) => void res.writeHead(200).end();
  before(async () => {
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () =>
        req.method === 'DELETE' ? onDelete(res) : answer((JSON.parse(body) as { id: unknown }).id, res),
      );
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const { port } = upstream.address() as AddressInfo;
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: http://127.0.0.1:${port}/mcp
auth:
  session_secret: "${'s'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`);
  });
  after(async () => {
    await gateway.close(200);
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  async function listTools(id: number) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${KEY}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
    });
    return { status: res.status, headers: res.headers, body: await res.text() };
  }

  it('a gzip-encoded SSE stream cannot carry an unfiltered list with the upstream tag past the gateway', async () => {
    answer = (id, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': 'gzip' });
      res.end(gzipSync(`data: ${listWithHidden(id)}\n\n`));
    };
    const got = await listTools(11);
    assert.equal(got.status, 502);
    assert.doesNotMatch(got.body, /secret/);
    assert.deepEqual(JSON.parse(got.body), {
      jsonrpc: '2.0',
      id: 11,
      error: { code: -32002, message: 'upstream sent a compressed body' },
    });
    const line = gateway.auditLines.at(-1)!;
    assert.equal(line.rpc_id, 11);
    assert.equal(line.decision, 'upstream_error');
    assert.equal(line.reason, 'ERR_UPSTREAM_PROTOCOL');
  });

  it('a gzip-encoded JSON body is refused, not passed on for the client to decode', async () => {
    answer = (id, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(listWithHidden(id)));
    };
    const got = await listTools(12);
    assert.equal(got.status, 502);
    assert.doesNotMatch(got.body, /secret/);
  });

  it('an error status with a body that is neither JSON nor SSE keeps its status, not its body', async () => {
    answer = (_id, res) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(listWithHidden(13));
    };
    const got = await listTools(13);
    assert.equal(got.status, 400);
    assert.equal(got.headers.get('content-type'), 'application/json');
    assert.deepEqual(JSON.parse(got.body), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32002, message: 'upstream answered 400' },
    });
    assert.equal(gateway.auditLines.at(-1)!.status, 400);
  });

  it("failed before: a 202 or 204 answering a request (Streamable HTTP owes its answer in the body) is a 502 with the request's error, never its body", async () => {
    // It passed as 202 "Accepted" (or an empty 204): the client then waited for an answer that
    // could never come, until its own timeout.
    for (const [status, type] of [
      [202, 'text/plain'],
      [202, 'application/json'],
      [204, 'application/json'],
    ] as const) {
      answer = (id, res) => {
        res.writeHead(status, { 'content-type': type });
        res.end(status === 204 ? undefined : type === 'text/plain' ? listWithHidden(id) : '');
      };
      const got = await listTools(16);
      assert.equal(got.status, 502, `${status} ${type}: ${got.body}`);
      assert.ok(!got.body.includes('hidden'), got.body);
      assert.deepEqual(JSON.parse(got.body), {
        jsonrpc: '2.0',
        id: 16,
        error: { code: -32002, message: `upstream answered ${status} to a request it must answer` },
      });
      assert.equal(gateway.auditLines.at(-1)!.reason, 'ERR_UPSTREAM_PROTOCOL');
    }
  });

  it('upstream headers outside the allowlist never reach the client; the gateway keeps its own', async () => {
    answer = (id, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': 'session=upstream',
        'x-request-id': 'forged-by-upstream',
        'www-authenticate': 'Bearer resource_metadata="http://elsewhere.example/.well-known"',
        ratelimit: 'limit=1000000, remaining=999999, reset=1',
        location: 'http://elsewhere.example/',
        'x-powered-by': 'upstream',
        'cache-control': 'no-store',
      });
      res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { tools: [{ name: 'echo' }] } }));
    };
    const got = await listTools(14);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('set-cookie'), null);
    assert.equal(got.headers.get('www-authenticate'), null);
    assert.equal(got.headers.get('location'), null);
    assert.equal(got.headers.get('x-powered-by'), null);
    assert.notEqual(got.headers.get('ratelimit'), 'limit=1000000, remaining=999999, reset=1');
    assert.equal(got.headers.get('x-request-id'), gateway.auditLines.at(-1)!.request_id);
    assert.equal(got.headers.get('cache-control'), 'no-store');
    assert.deepEqual(JSON.parse(got.body), { jsonrpc: '2.0', id: 14, result: { tools: [{ name: 'echo' }] } });
  });

  it('a repeated Content-Type reaches the client as the one type the gateway read the body as', async () => {
    answer = (id, res) => {
      res.writeHead(
        200,
        [
          ['content-type', 'text/event-stream'],
          ['content-type', 'application/json'],
        ].flat(),
      );
      res.end(`data: ${listWithHidden(id)}\n\n`);
    };
    const got = await listTools(15);
    assert.equal(got.headers.get('content-type'), 'text/event-stream');
    assert.doesNotMatch(got.body, /secret/);
  });

  it('a DELETE (which forwards no request) cannot carry a response to the client', async () => {
    const del = () =>
      fetch(gateway.mcpUrl, { method: 'DELETE', headers: { authorization: `Bearer ${KEY}` } });
    // The control: what an SDK server answers to DELETE passes.
    onDelete = (res) => void res.writeHead(200).end();
    const plain = await del();
    assert.equal(plain.status, 200);
    assert.equal(await plain.text(), '');
    onDelete = (res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${listWithHidden(1)}\n\n`);
    };
    const res = await del();
    const text = await res.text();
    assert.doesNotMatch(text, /secret/);
    assert.match(text, /"id":null/);
    onDelete = (r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.end(listWithHidden(1));
    };
    const json = await del();
    assert.equal(json.status, 502);
    assert.doesNotMatch(await json.text(), /secret/);
  });
});
