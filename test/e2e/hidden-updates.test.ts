/**
 * `notifications/resources/updated` naming a resource the key may not use never reaches it
 * (src/policy/hidden-updates.ts), whichever way the upstream sends it: on a GET stream, on a POST's
 * SSE answer, in a JSON body, on the HTTP+SSE transport's stream. Each test also sends an update
 * of a resource the key may use, which passes, so a path that dropped everything would fail too.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { legacyClients, messageEvent, messagesBefore } from '../helpers/legacy-session.ts';

const KEY = newKey();
const SECRET = 'h'.repeat(40);
const PUBLIC = 'file:///docs/public.txt';
const SECRET_URI = 'file:///docs/secret.txt';
const updated = (uri: string) => ({
  jsonrpc: '2.0',
  method: 'notifications/resources/updated',
  params: { uri },
});
const sseEvent = (message: unknown, id?: string) =>
  `${id === undefined ? '' : `id: ${id}\n`}event: message\ndata: ${JSON.stringify(message)}\n\n`;

function post(gateway: TestGateway, body: unknown): Promise<Response> {
  return fetch(gateway.mcpUrl, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${KEY}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify(body),
  });
}

describe('updates of resources the key may not use, over Streamable HTTP', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'k', key: KEY, resources: [PUBLIC] }], '', {
        secret: SECRET,
        resources: [],
      }),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('failed before: a GET stream passes the allowed update and drops the hidden one, keeping its event id', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(sseEvent(updated(SECRET_URI), 'e1') + sseEvent(updated(PUBLIC), 'e2'));
    });
    const res = await fetch(gateway.mcpUrl, {
      headers: { authorization: `Bearer ${KEY}`, accept: 'text/event-stream' },
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes('secret.txt'), text);
    assert.match(text, /public\.txt/);
    // Both events' ids reach the client (sealed), the hidden one's alone, so resuming skips neither.
    assert.equal(text.match(/^id: /gm)?.length, 2, text);
    assert.equal(text.match(/^data: /gm)?.length, 1, text);
  });

  it("failed before: a POST's SSE answer drops the hidden update and passes the allowed one and the result", async () => {
    upstream.set((seen, res) => {
      const id = (seen.body as { id: string }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        sseEvent(updated(SECRET_URI)) +
          sseEvent(updated(PUBLIC)) +
          sseEvent({ jsonrpc: '2.0', id, result: { content: [] } }),
      );
    });
    const res = await post(gateway, {
      jsonrpc: '2.0',
      id: 4,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes('secret.txt'), text);
    assert.match(text, /public\.txt/);
    assert.match(text, /"id":4,"result"/);
  });

  it('failed before: a JSON body holding a hidden update beside the answer is refused (502), one holding an allowed one passes', async () => {
    for (const [uri, status] of [
      [SECRET_URI, 502],
      [PUBLIC, 200],
    ] as const) {
      upstream.set((seen, res) => {
        const id = (seen.body as { id: string }).id;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify([{ jsonrpc: '2.0', id, result: {} }, updated(uri)]));
      });
      const res = await post(gateway, { jsonrpc: '2.0', id: 5, method: 'ping' });
      const text = await res.text();
      assert.equal(res.status, status, text);
      if (status === 502) assert.ok(!text.includes('secret.txt'), text);
      else assert.match(text, /public\.txt/);
    }
  });

  it('failed before: an update naming its resource with a dot segment, or a long one, is judged as resources/read judges it', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        sseEvent(updated('file:///docs/public.txt/../secret.txt')) +
          // Past the size the one-pass list path takes first (LIST_MIN_BYTES, 4 KiB).
          sseEvent(updated(`${SECRET_URI}?${'x'.repeat(5000)}`)) +
          sseEvent(updated(PUBLIC)),
      );
    });
    const res = await fetch(gateway.mcpUrl, {
      headers: { authorization: `Bearer ${KEY}`, accept: 'text/event-stream' },
    });
    const text = await res.text();
    assert.ok(!text.includes('secret.txt'), text);
    assert.match(text, /public\.txt/);
  });
});

describe('updates of resources the key may not use, over the HTTP+SSE transport', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=1');
    gateway = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'k', key: KEY, resources: [PUBLIC] }], '  transport: sse\n', {
        secret: SECRET,
        resources: [],
      }),
    );
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });
  const { open } = legacyClients(() => ({ gateway, upstream }), opened);

  it('failed before: the stream drops the hidden update and passes the allowed one', async () => {
    const a = await open(KEY);
    a.up.res.write(messageEvent(updated(SECRET_URI)));
    a.up.res.write(messageEvent(updated(PUBLIC)));
    assert.deepEqual(await messagesBefore(a.stream, a.up), [updated(PUBLIC)]);
  });

  // From the attack review of this filtering (hidden-updates-review.test.ts covers Streamable HTTP).
  it('hole: repeated uri, params or method, and a case variant of uri, passed the stream', async () => {
    const a = await open(KEY);
    const raw = [
      `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${SECRET_URI}","uri":"${PUBLIC}"}}`,
      `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${SECRET_URI}"},"params":{"uri":"${PUBLIC}"}}`,
      `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${SECRET_URI}"},"method":"notifications/message"}`,
      `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"URI":"${SECRET_URI}"}}`,
    ];
    for (const data of raw) a.up.res.write(`event: message\ndata: ${data}\n\n`);
    a.up.res.write(messageEvent(updated(PUBLIC)));
    assert.deepEqual(await messagesBefore(a.stream, a.up), [updated(PUBLIC)]);
  });
});
