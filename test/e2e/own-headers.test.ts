/**
 * The gateway's own response headers: every answer on the MCP endpoint carries X-Request-Id (the id
 * of its audit line), whether the gateway wrote it or relayed the upstream's; and a relayed answer's
 * head is written with one writeHead of a flat list, nothing set on the response before it (Node's
 * fast path: no header map to build and merge per request).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ServerResponse } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { startRawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));

describe("the gateway's own response headers", () => {
  let setup: RawUpstreamGateway;
  /** The upstream's own responses (node:http too, in this process): not the gateway's. */
  const upstreamResponses = new WeakSet<ServerResponse>();
  before(async () => {
    setup = await startRawUpstreamGateway(
      (req: IncomingMessage, res: ServerResponse) => {
        upstreamResponses.add(res);
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => {
          const msg = JSON.parse(body) as { id: unknown; params?: { name?: string } };
          const answer = JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { content: [] } });
          if (msg.params?.name === 'stream') {
            res.writeHead(200, { 'content-type': 'text/event-stream', 'x-upstream-only': 'yes' });
            res.end(`event: message\ndata: ${answer}\n\n`);
          } else {
            res.writeHead(200, { 'content-type': 'application/json', 'x-upstream-only': 'yes' });
            res.end(answer);
          }
        });
      },
      KEY,
      ['echo', 'stream'],
    );
  });
  after(async () => {
    await setup.close();
  });

  async function call(name: string, headers: Record<string, string> = {}, method = 'POST') {
    const res = await fetch(setup.gateway.mcpUrl, {
      method,
      headers: {
        authorization: `Bearer ${KEY}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...headers,
      },
      ...(method === 'POST'
        ? {
            body: JSON.stringify({
              jsonrpc: '2.0',
              id: 7,
              method: 'tools/call',
              params: { name, arguments: {} },
            }),
          }
        : {}),
    });
    const body = await res.text();
    return { status: res.status, headers: res.headers, body };
  }

  const lineFor = (id: string | null) => setup.gateway.auditLines.find((l) => l.request_id === id);

  for (const [name, type] of [
    ['echo', 'application/json'],
    ['stream', 'text/event-stream'],
  ] as const) {
    it(`a relayed ${type} answer: one writeHead of a flat list, nothing set before, X-Request-Id in it`, async (t) => {
      const setHeader = t.mock.method(ServerResponse.prototype, 'setHeader');
      const writeHead = t.mock.method(ServerResponse.prototype, 'writeHead');
      const got = await call(name);
      const ours = <T extends { this: unknown }>(calls: readonly T[]) =>
        calls.filter((c) => !upstreamResponses.has(c.this as ServerResponse));
      assert.equal(got.status, 200);
      assert.equal(ours(setHeader.mock.calls).length, 0, 'no setHeader on the response');
      const heads = ours(writeHead.mock.calls);
      assert.equal(heads.length, 1);
      assert.ok(Array.isArray(heads[0]!.arguments[1]), 'a flat [name, value, ...] list');
      assert.equal(got.headers.get('content-type'), type);
      assert.equal(got.headers.get('x-upstream-only'), null);
      const id = got.headers.get('x-request-id');
      assert.ok(id);
      assert.ok(lineFor(id), 'the id of its audit line');
    });
  }

  it('answers the gateway writes itself carry X-Request-Id: an error, a denial, a refused method', async () => {
    const unauthenticated = await call('echo', { authorization: 'Bearer nope' });
    const denied = await call('hidden');
    const method = await call('echo', {}, 'PUT');
    for (const got of [unauthenticated, denied, method]) {
      const id = got.headers.get('x-request-id');
      assert.ok(id, `status ${got.status}`);
      assert.ok(lineFor(id), `status ${got.status}: the id of its audit line`);
    }
    assert.deepEqual([unauthenticated.status, method.status], [401, 405]);
    assert.match(denied.body, /"error"/);
  });
});
