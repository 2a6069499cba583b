/**
 * Attacks on the policy over methods and streams (Streamable HTTP), through the real gateway in
 * front of a scripted upstream that records what it received and answers with the exact bytes each
 * test writes. Two keys: `alice` (tool echo, resources under file:///public/) and `bob` (tool echo).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));

function config(url: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'q'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(ALICE)}"
    allow: [echo]
    resources: ["file:///public/*"]
  - label: bob
    hash: "sha256:${sha256Hex(BOB)}"
    allow: [echo]
`;
}

const idOf = (seen: Seen) => (seen.body as { id: string }).id;

describe('stream and method policy attacks', () => {
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

  async function post(key: string, body: string, headers: Record<string, string> = {}) {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${key}`,
        ...headers,
      },
      body,
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }
  const auditOf = (requestId: string | null) =>
    waitFor(() => gateway.auditLines.find((l) => l.request_id === requestId), 2000, 'audit line');

  it('resources/templates/list hides a template every expansion of which is a dot-segment URI the key may not read', async () => {
    const templates = [
      { uriTemplate: 'file:///public/{name}', name: 'ok' },
      { uriTemplate: 'file:///public/../private/{name}', name: 'escape' },
      { uriTemplate: 'file:///public/%2e%2e/private/{name}', name: 'escape-encoded' },
    ];
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: idOf(seen), result: { resourceTemplates: templates } }));
    });
    const listed = await post(ALICE, '{"jsonrpc":"2.0","id":1,"method":"resources/templates/list"}');
    assert.equal(listed.status, 200);
    const names = (
      JSON.parse(listed.text) as { result: { resourceTemplates: { name: string }[] } }
    ).result.resourceTemplates.map((t) => t.name);
    // The key can neither read (resources/read) nor complete (completion/complete) through them:
    for (const t of templates.slice(1)) {
      const before = upstream.seen.length;
      const read = await post(
        ALICE,
        JSON.stringify({
          jsonrpc: '2.0',
          id: 2,
          method: 'completion/complete',
          params: {
            ref: { type: 'ref/resource', uri: t.uriTemplate },
            argument: { name: 'name', value: '' },
          },
        }),
      );
      assert.match(read.text, /not found/);
      assert.equal(upstream.seen.length, before, 'a completion through it never reaches the upstream');
    }
    // ... so "the response lists only what the key may use" must not list them.
    assert.deepEqual(names, ['ok']);
  });

  it('a 200 with an empty JSON body is not passed on as the answer to a request', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '0' });
      res.end();
    });
    const answer = await post(
      BOB,
      '{"jsonrpc":"2.0","id":"empty-1","method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    const line = await auditOf(answer.headers.get('x-request-id'));
    // README: a body the gateway cannot read as JSON is never passed on: a 2xx gets 502; a response
    // passes only when its id is a tag forwarded in that exchange. An empty body answers nothing.
    assert.equal(answer.status, 502, `status ${answer.status}, body ${JSON.stringify(answer.text)}`);
    assert.equal((JSON.parse(answer.text) as { id: unknown }).id, 'empty-1');
    assert.equal(line.decision, 'upstream_error');
  });
  it("a resuming GET never passes another key's events: Last-Event-ID of alice's stream sent by bob", async () => {
    // The upstream keeps one event log for every session and replays by event id alone (the SDK's
    // transport checks no session against an event store keyed by event id). Alice's call stream
    // carries a log notification, a server request (elicitation) and her response, all with her data.
    const log: { id: string; data: string }[] = [];
    upstream.set((seen, res) => {
      if (seen.method === 'GET') {
        const after = log.findIndex((e) => e.id === seen.headers['last-event-id']);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(
          log
            .slice(after + 1)
            .map((e) => `id: ${e.id}\ndata: ${e.data}\n\n`)
            .join(''),
        );
        return;
      }
      const tag = idOf(seen);
      log.push(
        { id: 'a0', data: '' },
        {
          id: 'a1',
          data: JSON.stringify({
            jsonrpc: '2.0',
            method: 'notifications/message',
            params: { level: 'info', data: 'ALICE-PRIVATE log line' },
          }),
        },
        {
          id: 'a2',
          data: JSON.stringify({
            jsonrpc: '2.0',
            id: 0,
            method: 'elicitation/create',
            params: { message: 'ALICE-PRIVATE: confirm transfer', requestedSchema: { type: 'object' } },
          }),
        },
        {
          id: 'a3',
          data: JSON.stringify({
            jsonrpc: '2.0',
            id: tag,
            result: { content: [{ type: 'text', text: 'ALICE-PRIVATE result' }] },
          }),
        },
      );
      // Alice's stream is cut after its priming event.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('id: a0\ndata: \n\n');
    });
    const call = await post(
      ALICE,
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    // The client sees the upstream's event id sealed for alice, never the upstream's own.
    const sealed = /^id: (.+)$/m.exec(call.text)?.[1];
    assert.ok(
      sealed !== undefined && sealed.startsWith('a0.') && sealed.length === 'a0.'.length + 16,
      call.text,
    );
    // Alice herself resumes with it and gets her events (the replay is real).
    const own = await fetch(gateway.mcpUrl, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${ALICE}`, 'last-event-id': sealed },
    });
    const ownText = await own.text();
    assert.match(ownText, /ALICE-PRIVATE result/);
    assert.match(ownText, /ALICE-PRIVATE log line/);
    const gets = () => upstream.seen.filter((s) => s.method === 'GET').length;
    const before = gets();
    // Bob presents the upstream's id (guessed or leaked), then alice's sealed one.
    for (const presented of ['a0', sealed, `${sealed.slice(0, -1)}${sealed.endsWith('A') ? 'B' : 'A'}`]) {
      const stolen = await fetch(gateway.mcpUrl, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${BOB}`, 'last-event-id': presented },
      });
      const text = await stolen.text();
      assert.equal(stolen.status, 400, text);
      assert.ok(!text.includes('ALICE-PRIVATE'), text);
      const line = await auditOf(stolen.headers.get('x-request-id'));
      assert.equal(line.reason, 'ERR_INVALID_REQUEST');
    }
    assert.equal(gets(), before, 'no refused resume reached the upstream');
  });

  it("bob's notifications/cancelled naming alice's in-flight request id never names alice's tag", async () => {
    let aliceTag = '';
    let release: (() => void) | undefined;
    upstream.set((seen, res) => {
      const body = seen.body as { id?: string; method: string };
      if (body.id === undefined) return void res.writeHead(202).end();
      aliceTag = body.id;
      release = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: body.id, result: { content: [] } }));
      };
    });
    const pending = post(
      ALICE,
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{}}}',
    );
    await waitFor(() => release, 2000, 'alice forwarded');
    const cancel = (key: string) =>
      post(key, '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}');
    assert.equal((await cancel(BOB)).status, 202);
    const fromBob = upstream.seen.at(-1)!.body as { params: { requestId: string } };
    assert.notEqual(fromBob.params.requestId, aliceTag);
    // Alice's own cancellation names her tag (so the check above can fail).
    assert.equal((await cancel(ALICE)).status, 202);
    const fromAlice = upstream.seen.at(-1)!.body as { params: { requestId: string } };
    assert.equal(fromAlice.params.requestId, aliceTag);
    release!();
    assert.equal((JSON.parse((await pending).text) as { id: number }).id, 7);
  });

  it("a JSON answer carrying another key's live tag is refused; the rightful answer still passes", async () => {
    let aliceTag = '';
    let answerAlice: (() => void) | undefined;
    upstream.set((seen, res) => {
      if (answerAlice === undefined) {
        aliceTag = idOf(seen);
        answerAlice = () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: aliceTag, result: { tools: [{ name: 'echo' }] } }));
        };
        return;
      }
      // Bob's request is answered with alice's tag, and a list bob must not see.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ jsonrpc: '2.0', id: aliceTag, result: { tools: [{ name: 'secret_admin' }] } }),
      );
    });
    const alice = post(ALICE, '{"jsonrpc":"2.0","id":"a","method":"tools/list"}');
    await waitFor(() => answerAlice, 2000, 'alice forwarded');
    const bob = await post(BOB, '{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo"}}');
    assert.equal(bob.status, 502);
    assert.ok(!bob.text.includes('secret_admin'), bob.text);
    answerAlice!();
    const mine = await alice;
    assert.equal(mine.status, 200);
    assert.deepEqual(JSON.parse(mine.text), {
      jsonrpc: '2.0',
      id: 'a',
      result: { tools: [{ name: 'echo' }] },
    });
  });

  it('the audit line records a refused answer on an SSE stream as the JSON path does (not a clean allow)', async () => {
    const refused = { jsonrpc: '2.0', id: 'not-a-tag', result: { tools: [{ name: 'secret_admin' }] } };
    const answerWith = (type: string, body: string) =>
      upstream.set((_seen, res) => {
        res.writeHead(200, { 'content-type': type });
        res.end(body);
      });
    answerWith('application/json', JSON.stringify(refused));
    const json = await post(BOB, '{"jsonrpc":"2.0","id":5,"method":"tools/list"}');
    const jsonLine = await auditOf(json.headers.get('x-request-id'));
    assert.equal(json.status, 502);
    assert.equal(jsonLine.decision, 'upstream_error');
    assert.equal(jsonLine.reason, 'ERR_UPSTREAM_PROTOCOL');
    // The same bytes as an SSE event: the client gets only the gateway's error event (held) ...
    answerWith('text/event-stream', `data: ${JSON.stringify(refused)}\n\n`);
    const sse = await post(BOB, '{"jsonrpc":"2.0","id":6,"method":"tools/list"}');
    assert.ok(!sse.text.includes('secret_admin'), sse.text);
    assert.match(sse.text, /"id":null,"error"/);
    // ... and the audit line must say so, not `allow` with no reason for a request never answered.
    const sseLine = await auditOf(sse.headers.get('x-request-id'));
    assert.deepEqual(
      { decision: sseLine.decision, reason: sseLine.reason },
      { decision: 'upstream_error', reason: 'ERR_UPSTREAM_PROTOCOL' },
    );
  });
});
