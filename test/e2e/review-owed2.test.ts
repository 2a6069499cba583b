/**
 * Attack review "owed2": the newest change to how responses end (an error per request a stream or
 * an error status leaves unanswered: src/proxy/relay.ts, sse-rewrite.ts, integrity/match.ts). Can a
 * client get two answers, none, or an answer for an id it never sent; does the audit line still
 * tell the truth. "hole:" tests failed before their fix; "holds:" tests pin what already held.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { postBody, startRawUpstreamGateway, withBody } from '../helpers/raw-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { reviewConfig } from '../helpers/review-config.ts';
import { openStream } from '../helpers/sse-stream.ts';
import { postAs } from '../helpers/legacy-session.ts';

const KEY = mintKey(randomBytes(32));
/** A log message event (no id: nothing to resume at). */
const NOTICE =
  'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n';

/** The tags of the requests in a forwarded body (one message or a batch). */
function tagsOf(body: Buffer): string[] {
  const value = JSON.parse(body.toString()) as { id?: string } | { id?: string }[];
  return (Array.isArray(value) ? value : [value]).map((m) => m.id as string);
}

const BATCH = JSON.stringify([
  { jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: {} } },
  { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'echo', arguments: {} } },
]);

describe('owed2 review: an error status that answers a batch in part', () => {
  it('hole: a 400 or 500 whose JSON body answered one request of two passed as it was: the other got nothing, and the 400\u2019s line said allow', async () => {
    // failed before: the client got [{"id":"a","error":...}] and nothing for `b` (a 2xx answering
    // part of a batch is refused: 502 with an error for each), the 400's line said allow.
    let status = 400;
    const own = await startRawUpstreamGateway(
      withBody((body, res: ServerResponse) => {
        const tag = tagsOf(body)[0] as string;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(`[{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"error":{"code":-32000,"message":"x"}}]`);
      }),
      KEY,
      ['echo'],
    );
    try {
      for (status of [400, 500]) {
        const res = await postBody(own, KEY, BATCH);
        assert.equal(res.status, status);
        const error = {
          code: -32002,
          message: `upstream answered ${status} with no response to a request of the batch`,
        };
        assert.deepEqual(await res.json(), [
          { jsonrpc: '2.0', id: 'a', error },
          { jsonrpc: '2.0', id: 'b', error },
        ]);
        const line = own.gateway.auditLines.at(-1);
        assert.equal(line?.decision, 'upstream_error');
        assert.equal(line?.reason, 'ERR_UPSTREAM_PROTOCOL');
        assert.equal(line?.status, status);
      }
    } finally {
      await own.close();
    }
  });

  it('holds: the upstream\u2019s one error with a null id under a 400 (it could not read the batch) passes as it is', async () => {
    const own = await startRawUpstreamGateway(
      withBody((_body, res: ServerResponse) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}');
      }),
      KEY,
      ['echo'],
    );
    try {
      const res = await postBody(own, KEY, BATCH);
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: 'Invalid Request' },
      });
    } finally {
      await own.close();
    }
  });
});

describe('owed2 review: a stream the gateway ends at shutdown', () => {
  const meta = '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}';
  const listen = `{"jsonrpc":"2.0","id":11,"method":"subscriptions/listen","params":{${meta},"notifications":{"toolsListChanged":true}}}`;

  it('hole: a listen that carried a log message got `gateway is shutting down` for its request, and its line said allow with no reason', async () => {
    // failed before: since a stream without an event id owes its requests an error (not only one
    // without any event), the client got the error, but the line read as a stream delivered whole.
    const own = await startRawUpstreamGateway(
      withBody((_body, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(NOTICE);
      }),
      KEY,
      ['echo'],
    );
    try {
      const res = await postBody(own, KEY, listen);
      assert.equal(res.status, 200);
      const text = res.text();
      await new Promise((r) => setTimeout(r, 200));
      await own.gateway.close(200);
      assert.equal(
        await text,
        NOTICE +
          'data: {"jsonrpc":"2.0","id":11,"error":{"code":-32003,"message":"gateway is shutting down"}}\n\n',
      );
      const line = own.gateway.auditLines.find((l) => l.rpc_id === 11);
      assert.equal(line?.reason, 'ERR_SHUTTING_DOWN');
      assert.equal(line?.aborted, false);
    } finally {
      await own.close();
    }
  });

  it('holds: one that gave its client an event id to resume at owes nothing, and its line names no reason', async () => {
    const own = await startRawUpstreamGateway(
      withBody((_body, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('id: 1\ndata: \n\n');
      }),
      KEY,
      ['echo'],
    );
    try {
      const res = await postBody(own, KEY, listen);
      const text = res.text();
      await new Promise((r) => setTimeout(r, 200));
      await own.gateway.close(200);
      const got = await text;
      assert.ok(!got.includes('error'), got);
      assert.match(got, /^id: .+\ndata: \n\n$/);
      const line = own.gateway.auditLines.find((l) => l.rpc_id === 11);
      assert.equal(line?.reason, undefined);
    } finally {
      await own.close();
    }
  });
});

describe('owed2 review: a cancellation without a session', () => {
  it('hole: one client\u2019s cancellation of its request 1 ended another client\u2019s request 1 (same key, no session) with no answer: that client waited for its timeout', async () => {
    // failed before: B's stream ended with its log message and nothing more (its request was marked
    // cancelled by A's notification, so owed nothing), and B's line said allow.
    const open = new Map<string, ServerResponse>();
    const own = await startRawUpstreamGateway(
      withBody((body, res: ServerResponse) => {
        const m = JSON.parse(body.toString()) as { id?: string; params?: { requestId?: string } };
        if (m.id === undefined) {
          res.writeHead(202).end();
          // The upstream does as the protocol asks: a cancelled request gets no answer.
          open.get(m.params?.requestId ?? '')?.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(NOTICE);
        open.set(m.id, res);
      }),
      KEY,
      ['echo'],
    );
    try {
      const call = JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      });
      // Two SDK clients of one key, each numbering its requests from 0 (no session: stateless).
      const a = await postBody(own, KEY, call);
      const b = await postBody(own, KEY, call);
      const bText = b.text();
      const cancel = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } };
      assert.equal((await postBody(own, KEY, JSON.stringify(cancel))).status, 202);
      assert.equal(
        await bText,
        NOTICE + 'data: {"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"request cancelled"}}\n\n',
      );
      for (const res of open.values()) res.end();
      await a.text();
      const lines = own.gateway.auditLines.filter((l) => l.rpc_method === 'tools/call');
      // B's upstream did as asked: not blamed.
      assert.equal(lines[0]?.decision, 'allow');
    } finally {
      await own.close();
    }
  });
});

describe('owed2 review: the HTTP+SSE transport', () => {
  it('hole: a POST accepted with an empty event stream got `upstream ended the stream without an answer` in its body, then its answer on the GET stream: two answers, and the POST\u2019s line blamed the upstream', async () => {
    // failed before: the POST's body held the owed error for id 5 and its line said upstream_error /
    // ERR_UPSTREAM_PROTOCOL, while the answer came on the GET stream as that transport has it.
    let stream: ServerResponse | undefined;
    const upstream = createServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: endpoint\ndata: /legacy/messages?sid=1\n\n');
        stream = res;
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const tag = (JSON.parse(Buffer.concat(chunks).toString()) as { id: string }).id;
        // Accepted as an event stream with nothing in it; the answer goes on the GET stream.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end();
        setTimeout(() => {
          const answer = { jsonrpc: '2.0', id: tag, result: { content: [] } };
          stream?.write(`event: message\ndata: ${JSON.stringify(answer)}\n\n`);
        }, 50);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/legacy/sse`;
    const gateway = await startTestGateway(
      reviewConfig(url, [{ label: 'k', key: KEY }], '  transport: sse\n', {
        secret: 's'.repeat(40),
        resources: [],
      }),
    );
    const client = await openStream(gateway.mcpUrl, KEY);
    try {
      const first = await client.next();
      assert.equal(first.event, 'endpoint');
      const endpoint = new URL(first.data, gateway.url).href;
      const call = { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'echo', arguments: {} } };
      const res = await postAs(KEY, endpoint, call);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '');
      const answer = await client.next(3000);
      assert.deepEqual(JSON.parse(answer.data), { jsonrpc: '2.0', id: 5, result: { content: [] } });
      const line = gateway.auditLines.find((l) => l.http_method === 'POST');
      assert.equal(line?.decision, 'allow');
      assert.equal(line?.reason, undefined);
    } finally {
      client.close();
      await gateway.close(200);
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    }
  });
});
