/**
 * Review of 9d47e66 / 5039460 / a090bd0: attacks on the fixes, through the real gateway in front of
 * a scripted upstream that records what it received and answers with the exact bytes each test
 * writes. Keys: `alice` (tool echo) and `bob` (tool echo).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { sealerFor } from '../helpers/event-ids.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));
const SECRET = 'q'.repeat(40);

function config(url: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${SECRET}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(ALICE)}"
    allow: [echo]
  - label: bob
    hash: "sha256:${sha256Hex(BOB)}"
    allow: [echo]
`;
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** A short but real-shaped HS256 JWT (the signature bytes do not matter to the checks). */
const JWT = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'alice', exp: 9999999999 })}.${'S'.repeat(43)}`;
const SHORT_JWT = `${b64({ alg: 'HS256' })}.${b64({ s: 1 })}.${'S'.repeat(43)}`;
const tagOf = (seen: Seen) => (seen.body as { id: string }).id;

describe('attacks on the session fixes', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function send(
    method: string,
    key: string | undefined,
    body?: string,
    headers: Record<string, string> = {},
    path = '',
  ) {
    const res = await fetch(gateway.mcpUrl + path, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        accept: 'application/json, text/event-stream',
        ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
        ...headers,
      },
      body,
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
  const auditOf = (requestId: string | null) =>
    waitFor(() => gateway.auditLines.find((l) => l.request_id === requestId), 2000, 'audit line');

  // ---- 9d47e66: credentials in the query string, User-Agent and X-Request-Id ----

  it('refuses a JWT in a query value behind a base64url character (?state=x-<jwt>)', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: tagOf(seen), result: {} }));
    });
    for (const value of [`x-${JWT}`, `cb_${JWT}`, `a${JWT}`]) {
      const before = upstream.seen.length;
      const answer = await send(
        'POST',
        ALICE,
        '{"jsonrpc":"2.0","id":1,"method":"ping"}',
        {},
        `?state=${value}`,
      );
      // README: any key in the query string is refused, "a JWT anywhere in a name or a value".
      assert.equal(answer.status, 401, `?state=${value.slice(0, 12)}… got ${answer.status}`);
      assert.equal(upstream.seen.length, before);
    }
  });

  it('never forwards or logs a JWT given as User-Agent behind a base64url character (client-<jwt>)', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: tagOf(seen), result: {} }));
    });
    const ua = `client-${JWT}`;
    const answer = await send('POST', ALICE, '{"jsonrpc":"2.0","id":1,"method":"ping"}', {
      'user-agent': ua,
    });
    assert.equal(answer.status, 200);
    const line = await auditOf(answer.headers.get('x-request-id'));
    const forwarded = upstream.seen.at(-1)!.headers['user-agent'];
    assert.ok(!String(forwarded).includes(JWT), `forwarded upstream: ${forwarded}`);
    assert.ok(!JSON.stringify(line).includes(JWT), `audit line: ${line.user_agent}`);
  });

  it('replaces an X-Request-Id holding a JWT behind a base64url character (r-<jwt>)', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: tagOf(seen), result: {} }));
    });
    const id = `r-${SHORT_JWT}`;
    assert.ok(id.length <= 128);
    const answer = await send('POST', ALICE, '{"jsonrpc":"2.0","id":1,"method":"ping"}', {
      'x-request-id': id,
    });
    assert.notEqual(answer.headers.get('x-request-id'), id, 'echoed to the client');
    assert.notEqual(upstream.seen.at(-1)!.headers['x-request-id'], id, 'sent upstream');
  });

  // (The cost of checking a crafted User-Agent is bounded by count, not timed:
  // test/unit/auth/credential-scan-attacks.test.ts.)

  // ---- a090bd0: sealed event ids ----

  it('a DELETE answered as SSE never shows the client an unsealed upstream event id', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'upstream-session-1' });
      res.end(
        JSON.stringify({
          jsonrpc: '2.0',
          id: tagOf(seen),
          result: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            serverInfo: { name: 's', version: '1' },
          },
        }),
      );
    });
    const init = await send(
      'POST',
      ALICE,
      '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}',
    );
    const session = init.headers.get('mcp-session-id');
    assert.ok(session, `${init.status} ${init.text}`);
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        'id: raw-upstream-1\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n' +
          'id: raw-upstream-2\n\n',
      );
    });
    const answer = await send('DELETE', ALICE, undefined, { 'mcp-session-id': session });
    assert.equal(upstream.seen.at(-1)!.method, 'DELETE');
    assert.equal(answer.status, 200, answer.text);
    // README: "every event id a client sees is sealed for its key".
    assert.ok(!/^id: raw-upstream-\d$/m.test(answer.text), answer.text);
  });

  it('(holds) a tools/list answered in an SSE event with an id is filtered and its id sealed', async () => {
    const seal = sealerFor(SECRET, ALICE);
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const data = JSON.stringify({
        jsonrpc: '2.0',
        id: tagOf(seen),
        result: {
          tools: [
            { name: 'echo', inputSchema: { type: 'object' } },
            { name: 'secret_admin', inputSchema: { type: 'object' } },
          ],
        },
      });
      res.end(`\ufeffid:e1\nretry: 10\nid: e2\ndata: ${data}\n\n`);
    });
    const answer = await send('POST', ALICE, '{"jsonrpc":"2.0","id":3,"method":"tools/list"}');
    assert.ok(!answer.text.includes('secret_admin'), answer.text);
    assert.match(answer.text, /"echo"/);
    assert.ok(answer.text.includes(`id: ${seal('e2')}\n`), answer.text);
  });

  it("(holds) an event with an id carrying bob's tag on alice's request is refused", async () => {
    let bobTag = '';
    upstream.set((seen, res) => {
      if (bobTag === '') {
        bobTag = tagOf(seen);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: bobTag, result: {} }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        `id: x1\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: bobTag, result: { tools: [{ name: 'BOBS' }] } })}\n\n`,
      );
    });
    await send('POST', BOB, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    const answer = await send('POST', ALICE, '{"jsonrpc":"2.0","id":1,"method":"tools/list"}');
    assert.ok(!answer.text.includes('BOBS'), answer.text);
    assert.match(answer.text, /"id":null,"error"/);
    const line = await auditOf(answer.headers.get('x-request-id'));
    assert.equal(line.decision, 'upstream_error');
  });

  it('(holds) Last-Event-ID is never forwarded on a POST, and a doubled one on GET is refused', async () => {
    const seal = sealerFor(SECRET, ALICE);
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return void res.end();
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: tagOf(seen), result: {} }));
    });
    await send('POST', ALICE, '{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'last-event-id': seal('e1') });
    assert.equal(upstream.seen.at(-1)!.headers['last-event-id'], undefined);
    const before = upstream.seen.length;
    const raw = await new Promise<number>((resolve, reject) => {
      const u = new URL(gateway.mcpUrl);
      import('node:http').then(({ request }) => {
        const r = request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'GET',
            headers: [
              'accept',
              'text/event-stream',
              'authorization',
              `Bearer ${ALICE}`,
              'last-event-id',
              seal('e1'),
              'last-event-id',
              seal('e2'),
            ],
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        r.on('error', reject);
        r.end();
      }, reject);
    });
    assert.equal(raw, 400);
    assert.equal(upstream.seen.length, before);
  });

  // ---- a090bd0: an empty 2xx JSON body while a request awaits ----

  for (const [label, body] of [
    ['an empty batch `[]`', '[]'],
    [
      'a notification alone',
      '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}',
    ],
  ] as const) {
    it(`a 200 JSON body that answers nothing (${label}) is not passed on as the answer`, async () => {
      upstream.set((_seen, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
      const answer = await send(
        'POST',
        BOB,
        '{"jsonrpc":"2.0","id":"await-1","method":"tools/call","params":{"name":"echo","arguments":{}}}',
      );
      // The request forwarded is never answered: the rule for the empty body (502) applies.
      assert.equal(answer.status, 502, `status ${answer.status}, body ${answer.text}`);
    });
  }

  it('a 200 JSON body answering one request of a batch of two is not passed on as the answer', async () => {
    upstream.set((seen, res) => {
      const first = (seen.body as { id: string }[])[0]!;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ jsonrpc: '2.0', id: first.id, result: {} }]));
    });
    const answer = await send(
      'POST',
      BOB,
      '[{"jsonrpc":"2.0","id":"b1","method":"ping"},{"jsonrpc":"2.0","id":"b2","method":"ping"}]',
      { 'mcp-protocol-version': '2025-03-26' },
    );
    // "b2" awaits an answer the client will never get, as with an empty body.
    assert.equal(answer.status, 502, `status ${answer.status}, body ${answer.text}`);
  });

  it('a 200 SSE answer with content-length 0 (no event, no id to resume at) does not leave the request unanswered', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-length': '0' });
      res.end();
    });
    const answer = await send(
      'POST',
      BOB,
      '{"jsonrpc":"2.0","id":"await-3","method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    const line = await auditOf(answer.headers.get('x-request-id'));
    // As for the empty JSON body: a 502, or an error event answering "await-3"; never a clean
    // empty stream the client waits on forever (it saw no event id, so it cannot resume), and never
    // an audit line saying the request was allowed and answered.
    const answered = answer.status === 502 || /"id":"await-3"/.test(answer.text);
    assert.ok(
      answered,
      `status ${answer.status}, body ${JSON.stringify(answer.text)}, audit ${line.decision}`,
    );
  });

  it('(holds) a chunked empty 200 JSON body is a 502', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.end();
    });
    const answer = await send(
      'POST',
      BOB,
      '{"jsonrpc":"2.0","id":"await-2","method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    assert.equal(answer.status, 502);
  });
});
