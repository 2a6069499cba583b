/**
 * Attack review of `notifications/resources/updated` filtering (src/policy/hidden-updates.ts): other
 * spellings of an update that a client reads as naming a hidden resource (case-folding and
 * first-wins decoders, URL parsers that drop tabs and newlines), other paths, and the opposite (an
 * update or a response that should pass, dropped). "hole:" tests failed before their fix; "holds:"
 * tests pin what already held.
 *
 * Every stream test ends with an update of an allowed resource (a sentinel), so a path that
 * dropped everything would fail too.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';

const KEY = newKey();
const SECRET = 'r'.repeat(40);
const PUBLIC = 'file:///docs/public.txt';
const SECRET_URI = 'file:///docs/secret.txt';
const UPDATED = 'notifications/resources/updated';
const updated = (uri: string) => ({ jsonrpc: '2.0', method: UPDATED, params: { uri } });
/** A plain block, as servers write one (the byte-level fast path reads such blocks). */
const plain = (data: string, id?: string) => `${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`;
const SENTINEL = plain(JSON.stringify(updated(PUBLIC)));

const headers = (key: string | undefined) => ({
  ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
});

function post(gateway: TestGateway, body: unknown, key: string | undefined = KEY): Promise<Response> {
  return fetch(gateway.mcpUrl, { method: 'POST', headers: headers(key), body: JSON.stringify(body) });
}

function get(gateway: TestGateway, key: string | undefined = KEY): Promise<Response> {
  const { accept: _accept, 'content-type': _type, ...rest } = headers(key);
  return fetch(gateway.mcpUrl, { headers: { ...rest, accept: 'text/event-stream' } });
}

describe('hidden updates review: Streamable HTTP', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(
      reviewConfig(
        upstream.url,
        [{ label: 'k', key: KEY, resources: [PUBLIC, 'file:///docs/pub/*', 'file:///logs/{day}'] }],
        '',
        { secret: SECRET, resources: [] },
      ),
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  /** What a GET stream delivers when the upstream writes `body` on it and ends. */
  async function getStream(body: string | readonly string[]): Promise<string> {
    const pieces = typeof body === 'string' ? [body] : body;
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let k = 0;
      const next = () => {
        if (k === pieces.length) return void res.end();
        res.write(pieces[k++]);
        setTimeout(next, 5);
      };
      next();
    });
    const res = await get(gateway);
    assert.equal(res.status, 200);
    return res.text();
  }

  /** Asserts the secret never reached the client, and the sentinel did. */
  function hidden(text: string): void {
    assert.ok(!/secret/i.test(text), text);
    assert.match(text, /public\.txt/);
  }

  // --- spellings a client reads differently -----------------------------------------------------

  it('hole: a case variant of uri ("URI", read as uri by Go encoding/json v1) passed, even by the byte fast path', async () => {
    for (const key of ['URI', 'Uri']) {
      const text = await getStream(
        plain(`{"jsonrpc":"2.0","method":"${UPDATED}","params":{"${key}":"${SECRET_URI}"}}`) + SENTINEL,
      );
      hidden(text);
    }
  });

  it('hole: a case variant of params ("Params") passed the byte fast path (the parse refuses it)', async () => {
    const text = await getStream(
      plain(`{"jsonrpc":"2.0","method":"${UPDATED}","Params":{"uri":"${SECRET_URI}"}}`) + SENTINEL,
    );
    hidden(text);
  });

  it('hole: a repeated uri (a first-wins client reads the first, hidden one) passed', async () => {
    const text = await getStream(
      plain(`{"jsonrpc":"2.0","method":"${UPDATED}","params":{"uri":"${SECRET_URI}","uri":"${PUBLIC}"}}`) +
        SENTINEL,
    );
    hidden(text);
  });

  it('hole: a repeated params (the first names the hidden resource) passed', async () => {
    const text = await getStream(
      plain(
        `{"jsonrpc":"2.0","method":"${UPDATED}","params":{"uri":"${SECRET_URI}"},"params":{"uri":"${PUBLIC}"}}`,
      ) + SENTINEL,
    );
    hidden(text);
  });

  it('hole: a repeated method (the first an update, the last not) passed', async () => {
    const text = await getStream(
      plain(
        `{"jsonrpc":"2.0","method":"${UPDATED}","params":{"uri":"${SECRET_URI}"},"method":"notifications/message"}`,
      ) + SENTINEL,
    );
    hidden(text);
  });

  it('hole: a tab or newline inside a dot segment (URL parsers drop them: /pub/.\\t./secret.txt is /secret.txt) passed', async () => {
    for (const uri of ['file:///docs/pub/.\t./secret.txt', 'file:///docs/pub/.\n./secret.txt']) {
      const text = await getStream(plain(JSON.stringify(updated(uri))) + SENTINEL);
      hidden(text);
    }
  });

  it('holds: escaped keys and values (\\u0075ri, m\\u0065thod, params, the method) are judged as read', async () => {
    const spellings = [
      `{"jsonrpc":"2.0","method":"${UPDATED}","params":{"\\u0075ri":"${SECRET_URI}"}}`,
      `{"jsonrpc":"2.0","m\\u0065thod":"${UPDATED}","params":{"uri":"${SECRET_URI}"}}`,
      `{"jsonrpc":"2.0","method":"${UPDATED}","p\\u0061rams":{"uri":"${SECRET_URI}"}}`,
      `{"jsonrpc":"2.0","method":"notifications\\/resources\\/upd\\u0061ted","params":{"uri":"${SECRET_URI}"}}`,
      `{"jsonrpc":"2.0","method":"${UPDATED}","params":{"uri":"file:///docs/\\u0073ecret.txt"}}`,
      ` \t{ "jsonrpc" : "2.0" , "method" : "${UPDATED}" , "params" : { "uri" : "${SECRET_URI}" } } `,
    ];
    for (const data of spellings) hidden(await getStream(plain(data) + SENTINEL));
  });

  it('holds: a BOM, CRLF line ends, multi-line data, retry and another event type, an event cut into 1-byte chunks', async () => {
    const data = JSON.stringify(updated(SECRET_URI));
    const half = Math.floor(data.length / 2);
    hidden(await getStream(`\ufeffdata: ${data}\n\n${SENTINEL}`));
    hidden(await getStream(`\u00ef\u00bb\u00bfdata: ${data}\n\n${SENTINEL}`));
    hidden(await getStream(`data: ${data}\r\n\r\n${SENTINEL}`));
    hidden(await getStream(`data: ${data.slice(0, half)}\ndata: ${data.slice(half)}\n\n${SENTINEL}`));
    hidden(await getStream(`retry: 10\nevent: other\nid: 7\ndata: ${data}\n\n${SENTINEL}`));
    hidden(await getStream([...`id: 8\ndata: ${data}\n\n`, SENTINEL]));
  });

  it('holds: past 4 KiB and 64 KiB, and in a batch with an allowed update', async () => {
    for (const size of [5000, 70_000]) {
      const uri = `${SECRET_URI}?${'x'.repeat(size)}`;
      hidden(await getStream(plain(JSON.stringify(updated(uri))) + SENTINEL));
    }
    hidden(await getStream(plain(JSON.stringify([updated(PUBLIC), updated(SECRET_URI)])) + SENTINEL));
  });

  it('holds: a dropped event keeps its id (sealed), alone, and the stream goes on', async () => {
    const data = JSON.stringify(updated(SECRET_URI));
    const text = await getStream(`id: 41\ndata: ${data}\n\n${SENTINEL}`);
    hidden(text);
    const blocks = text.split('\n\n').filter((b) => b !== '');
    assert.equal(blocks.length, 2, text);
    // Sealed: the upstream's id and its MAC (integrity/event-ids.ts).
    assert.match(blocks[0] as string, /^id: 41\.[\w-]{16}$/);
  });

  it('hole: a dropped event lost its retry: and an empty id: (which a client applies with or without an event)', async () => {
    const data = JSON.stringify(updated(SECRET_URI));
    const text = await getStream(`id: 41\nretry: 5\ndata: ${data}\n\nid:\ndata: ${data}\n\n${SENTINEL}`);
    hidden(text);
    const blocks = text.split('\n\n').filter((b) => b !== '');
    assert.equal(blocks.length, 3, text);
    assert.match(blocks[0] as string, /^id: 41\.[\w-]{16}\nretry: 5$/);
    // The empty id resets the client's resume point, as the upstream meant (never sealed).
    assert.match(blocks[1] as string, /^id: ?$/);
  });

  it('holds: a resumed GET (Last-Event-ID) drops the hidden update too', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(plain(JSON.stringify(updated(SECRET_URI)), 'u1') + SENTINEL);
    });
    const first = await get(gateway);
    const sealed = /^id: (\S+)$/m.exec(await first.text())?.[1];
    assert.ok(sealed);
    const res = await fetch(gateway.mcpUrl, {
      headers: { authorization: `Bearer ${KEY}`, accept: 'text/event-stream', 'last-event-id': sealed },
    });
    assert.equal(res.status, 200);
    hidden(await res.text());
  });

  it('holds: a template grant is judged as resources/read judges it (the template string, not its expansions)', async () => {
    const text = await getStream(
      plain(JSON.stringify(updated('file:///logs/secret-2026'))) +
        plain(JSON.stringify(updated('file:///logs/{day}'))) +
        SENTINEL,
    );
    hidden(text);
    assert.match(text, /logs\/\{day\}/);
  });

  it('hole: a response batched in one SSE event with a hidden update vanished unanswered (no error, no audit)', async () => {
    upstream.set((seen, res) => {
      const id = (seen.body as { id: string }).id;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(plain(JSON.stringify([{ jsonrpc: '2.0', id, result: { content: [] } }, updated(SECRET_URI)])));
    });
    const res = await post(gateway, {
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes('secret'), text);
    // The client is answered: only the update leaves the batch.
    assert.match(text, /"id":9,"result"/, text);
  });

  it('hole: a JSON body with a repeated uri (the first hidden) passed, under and over 4 KiB', async () => {
    for (const pad of [0, 5000]) {
      upstream.set((seen, res) => {
        const id = (seen.body as { id: string }).id;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          `[{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"p":"${'x'.repeat(pad)}"}},` +
            `{"jsonrpc":"2.0","method":"${UPDATED}","params":{"uri":"${SECRET_URI}","uri":"${PUBLIC}"}}]`,
        );
      });
      const res = await post(gateway, { jsonrpc: '2.0', id: 5, method: 'ping' });
      const text = await res.text();
      assert.equal(res.status, 502, text);
      assert.ok(!text.includes('secret'), text);
    }
  });
});

describe('hidden updates review: allow_unauthenticated (every grant)', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
auth:
  allow_unauthenticated: true
`);
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('hole: an update of a resource every read of which passes (a dot segment, under every grant) was dropped, and its JSON body refused', async () => {
    const uri = 'file:///docs/a/../b.txt';
    // resources/read of it passes: ALLOW_ALL reads every URI.
    upstream.set((seen, res) => {
      const id = (seen.body as { id: string }).id;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { contents: [] } }));
    });
    const read = await post(
      gateway,
      { jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri } },
      undefined,
    );
    assert.equal(read.status, 200, await read.text());
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(plain(JSON.stringify(updated(uri))));
    });
    const stream = await (await get(gateway, undefined)).text();
    assert.ok(stream.includes('b.txt'), stream);
    upstream.set((seen, res) => {
      const id = (seen.body as { id: string }).id;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ jsonrpc: '2.0', id, result: {} }, updated(uri)]));
    });
    const body = await post(gateway, { jsonrpc: '2.0', id: 2, method: 'ping' }, undefined);
    const text = await body.text();
    assert.equal(body.status, 200, text);
    assert.match(text, /b\.txt/);
  });
});
