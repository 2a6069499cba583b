/**
 * Fifteenth attack review (of 9bb89b3: per-key body share, max_in_flight taken before tagging,
 * per-principal pending cancellations, padded cursors, lists without an id). Through a real gateway
 * in front of hand-scripted upstreams. `hole:` tests assert the secure behaviour and fail on the code
 * they were written against (each says what happens now); `held:` tests are attacks that did not
 * get through. No timing assertions.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import { createCursors } from '../../src/integrity/cursors.ts';
import { PendingTags } from '../../src/integrity/cancels.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const SECRET = 's'.repeat(40);
const ACCEPT = 'application/json, text/event-stream';
const newKey = () => mintKey(randomBytes(32));

type Msg = { method?: string; id?: unknown; params?: Record<string, unknown>; result?: unknown };
const messagesOf = (seen: Seen): Msg[] =>
  Array.isArray(seen.body) ? (seen.body as Msg[]) : seen.body ? [seen.body as Msg] : [];

function answerJson(res: ServerResponse, id: unknown, result: unknown = {}): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
}

const call = (id: number | string, args: Record<string, unknown> = {}) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: args } });

/** An upstream that answers every request at once (202 for a body without a request). */
async function echoUpstream(cleanups: (() => Promise<void> | void)[]): Promise<ScriptedUpstream> {
  const upstream = await startScriptedUpstream();
  upstream.set((seen, res) => {
    const ms = messagesOf(seen);
    const req = ms.find((m) => m.method !== undefined && m.id !== undefined);
    if (req === undefined) return void res.writeHead(202).end();
    if (req.method === 'tools/list')
      return answerJson(res, req.id, { tools: [{ name: 'echo', inputSchema: { type: 'object' } }] });
    answerJson(res, req.id, { content: [{ type: 'text', text: 'ok' }] });
  });
  cleanups.push(() => upstream.close());
  return upstream;
}

/** Sends a POST's head and the first part of its body on a raw socket, and keeps it open. */
function partialPost(
  url: string,
  headers: Record<string, string>,
  body: string,
  sent: number,
): ReturnType<typeof connect> {
  const u = new URL(url);
  const socket = connect(Number(u.port), u.hostname);
  socket.on('error', () => {});
  const head =
    `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\n` +
    Object.entries({ ...headers, 'content-length': String(Buffer.byteLength(body)) })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('') +
    '\r\n';
  socket.write(head + body.slice(0, sent));
  return socket;
}

describe('review15: the per-key body share (handler.ts reading)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * A JWK set server in front of the test authorization server that holds its answers while `hold`
   * is set (an authorization server slow to answer a key refetch).
   */
  async function slowJwks(as: TestAuthServer) {
    let hold = false;
    const held: (() => void)[] = [];
    let hits = 0;
    const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
      hits++;
      const serve = () =>
        void fetch(as.jwksUri)
          .then((r) => r.text())
          .then((t) => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(t);
          })
          .catch(() => res.destroy());
      if (hold) held.push(serve);
      else serve();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      for (const s of held.splice(0)) s();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
      get hits() {
        return hits;
      },
      set hold(v: boolean) {
        hold = v;
      },
      release() {
        for (const s of held.splice(0)) s();
      },
    };
  }

  it("hole: an OAuth client that leaves while its token is verified leaks its key's body slot for good", async () => {
    const as = await startAuthServer();
    cleanups.push(() => as.close());
    const jwks = await slowJwks(as);
    const upstream = await echoUpstream(cleanups);
    const port = await freePort();
    const gateway = await startTestGateway(
      [
        `listen: 127.0.0.1:${port}`,
        `public_url: http://127.0.0.1:${port}/mcp`,
        'upstream:',
        `  url: ${upstream.url}`,
        'limits:',
        '  max_body_bytes: 1MiB',
        '  max_buffered_bytes: 4MiB',
        'auth:',
        `  session_secret: "${SECRET}"`,
        '  oauth:',
        `    issuer: ${as.issuer}`,
        `    jwks_uri: ${jwks.url}`,
        '    grants:',
        '      - name: all',
        '        when: { scope: mcp }',
        '        allow: [echo]',
        '        rate_limit: { capacity: 1000, refill_per_second: 100, max_in_flight: 100 }',
      ].join('\n'),
      {},
      { listen: `127.0.0.1:${port}`, oauthTuning: { cooldownMs: 0 } },
    );
    cleanups.push(async () => void (await gateway.close(200)));
    const mcpUrl = gateway.mcpUrl;
    // One body per key at once: a quarter of 4 MiB is one body of 1 MiB.
    // The keys are fetched once (start or first token); a token signed with a key rotated in after
    // makes the gateway refetch the set, which the slow server holds.
    const first = await as.sign({ aud: mcpUrl, sub: 'alice', scope: 'mcp' });
    const ok0 = await fetch(mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${first}`, accept: ACCEPT, 'content-type': 'application/json' },
      body: call(1),
    });
    assert.equal(ok0.status, 200, await ok0.text());
    await as.rotate();
    jwks.hold = true;
    const hitsBefore = jwks.hits;
    const token = await as.sign({ aud: mcpUrl, sub: 'alice', scope: 'mcp' });
    const lines = gateway.auditLines.length;
    const socket = partialPost(
      mcpUrl,
      { authorization: `Bearer ${token}`, accept: ACCEPT, 'content-type': 'application/json' },
      call(2),
      10,
    );
    // The gateway waits on the key set for this token; the client leaves meanwhile.
    await waitFor(() => jwks.hits > hitsBefore || undefined, 5000, 'the key refetch');
    socket.destroy();
    await waitFor(() => gateway.auditLines.length > lines || undefined, 5000, 'the aborted line');
    jwks.hold = false;
    jwks.release();
    await new Promise((r) => setTimeout(r, 300));
    // The same subject (its earlier token still valid) posts a small, whole body.
    const res = await fetch(mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${first}`, accept: ACCEPT, 'content-type': 'application/json' },
      body: call(3),
    });
    const text = await res.text();
    // failed before: 429 ERR_TOO_MANY_IN_FLIGHT for ever: readBody attached its listeners to a request
    // already closed, its promise never settles, and the key's one body slot is never given back.
    assert.equal(res.status, 200, text);
  });
});

interface KeySpec {
  readonly label: string;
  readonly key: string;
  readonly capacity?: number;
  readonly maxInFlight?: number;
  readonly allow?: string;
}

function configFor(upstreamUrl: string, keys: readonly KeySpec[], extra = ''): string {
  const keyText = keys
    .map(
      (k) => `  - label: ${k.label}
    hash: "sha256:${sha256Hex(k.key)}"
    allow: ${k.allow ?? '["echo"]'}
    rate_limit: { capacity: ${k.capacity ?? 100000}, refill_per_second: 1000${k.maxInFlight !== undefined ? `, max_in_flight: ${k.maxInFlight}` : ''} }
`,
    )
    .join('');
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
${extra}auth:
  session_secret: "${SECRET}"
keys:
${keyText}`;
}

const headersFor = (key: string): Record<string, string> => ({
  authorization: `Bearer ${key}`,
  accept: ACCEPT,
  'content-type': 'application/json',
});

async function post(url: string, key: string, body: string | Buffer, extra: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', headers: { ...headersFor(key), ...extra }, body });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** A tools/call body of exactly `size` bytes (its arguments padded). */
function callOfSize(id: number, size: number, args: Record<string, unknown> = {}): string {
  const base = call(id, { ...args, pad: '' });
  const body = call(id, { ...args, pad: 'x'.repeat(size - Buffer.byteLength(base)) });
  assert.equal(Buffer.byteLength(body), size);
  return body;
}

describe('review15: what one key holds of the buffer budget', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("hole: one key's whole bodies, whose answers wait (on the client, a slow tool), still take the whole buffer budget: 503 for every other key", async () => {
    // An upstream whose tools/call with `hold` waits (a tool that asks the client a question and
    // waits for its reply, a long tool): answered only at cleanup.
    const upstream = await startScriptedUpstream();
    const held: ServerResponse[] = [];
    upstream.set((seen, res) => {
      res.on('error', () => {});
      const one = messagesOf(seen)[0];
      if ((one?.params?.arguments as { hold?: boolean } | undefined)?.hold) return void held.push(res);
      if (one?.id === undefined) return void res.writeHead(202).end();
      answerJson(res, one.id, { content: [] });
    });
    cleanups.push(async () => {
      for (const r of held) r.destroy();
      await upstream.close();
    });
    const a = { label: 'a', key: newKey() };
    const b = { label: 'b', key: newKey() };
    const gateway = await startTestGateway(
      configFor(upstream.url, [a, b], 'limits:\n  max_body_bytes: 1MiB\n  max_buffered_bytes: 4MiB\n'),
    );
    cleanups.push(async () => void (await gateway.close(200)));
    // Key a: four whole bodies of max_body_bytes, one after another (never two being read at
    // once, so its share of bodies being read never refuses one), each a call whose answer waits.
    // Now: a key's bodies hold at most its share of the budget (a quarter, at least one body of
    // max_body_bytes: here 1 MiB) until their answers end: the first is held, the next are refused.
    void post(gateway.mcpUrl, a.key, callOfSize(100, 1024 * 1024, { hold: true })).catch(() => {});
    await waitFor(() => held.length > 0 || undefined, 5000, 'held call 0');
    for (let i = 1; i < 4; i++) {
      const refused = await post(gateway.mcpUrl, a.key, callOfSize(100 + i, 1024 * 1024, { hold: true }));
      assert.equal(refused.status, 503, `a's call ${i}: ${refused.text}`);
    }
    assert.equal(held.length, 1, 'only the first reached the upstream');
    // Key b: one small call.
    const res = await post(gateway.mcpUrl, b.key, call(1));
    // failed before: 503 ERR_OVERLOADED: key a's four read bodies stayed reserved until their answers
    // ended, and max_in_flight (64) did not bound them; the per-key share counted only bodies being read.
    assert.equal(res.status, 200, res.text);
  });
});

describe('review15: sealed cursors at their edges', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** An upstream whose tools/list answers `nextCursor: next(cursor it received)`; records cursors. */
  async function cursorUpstream(next: (cursor: unknown) => unknown) {
    const upstream = await startScriptedUpstream();
    const received: unknown[] = [];
    upstream.set((seen, res) => {
      const m = messagesOf(seen)[0];
      if (m?.id === undefined) return void res.writeHead(202).end();
      const cursor = m.params?.cursor;
      received.push(cursor);
      const n = next(cursor);
      answerJson(res, m.id, {
        tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
        ...(n === undefined ? {} : { nextCursor: n }),
      });
    });
    cleanups.push(() => upstream.close());
    return { upstream, received };
  }

  const list = (id: number, cursor?: unknown) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/list',
      params: cursor === undefined ? {} : { cursor },
    });

  it('hole: an upstream\'s empty nextCursor ("", no more pages) reaches the client as a non-empty seal: a client paging `while (cursor)` never stops', async () => {
    // An upstream that ends its pages with `"nextCursor": ""` (a Go struct field without omitempty,
    // a server that fills in the empty string): "" is falsy, so a client's paging loop stops there.
    const { upstream, received } = await cursorUpstream(() => '');
    const a = { label: 'a', key: newKey() };
    const gateway = await startTestGateway(configFor(upstream.url, [a]));
    cleanups.push(async () => void (await gateway.close(200)));
    // The SDK-style loop: do { page = list(cursor); cursor = page.nextCursor } while (cursor).
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await post(gateway.mcpUrl, a.key, list(pages + 1, cursor));
      assert.equal(res.status, 200, res.text);
      cursor = (JSON.parse(res.text) as { result: { nextCursor?: string } }).result.nextCursor;
      pages++;
    } while (cursor && pages < 5);
    // failed before: 5 pages and counting: "" comes back as "c1.<seal>" (truthy), which opens to ""
    // and is sent back to the upstream, which answers the first page again with "" again.
    assert.equal(pages, 1, `upstream received cursors ${JSON.stringify(received)}`);
  });
});

describe('review15: the per-key body share gives its slot back', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** Writes raw bytes on a socket and resolves with what came back once the gateway closed it or `ms` passed. */
  function raw(url: string, bytes: (string | Buffer)[], { ms = 1500, afterContinue = false } = {}) {
    const u = new URL(url);
    return new Promise<string>((resolve) => {
      const socket = connect(Number(u.port), u.hostname);
      let answer = '';
      let rest = afterContinue ? bytes.slice(1) : [];
      socket.on('error', () => {});
      socket.on('data', (d: Buffer) => {
        answer += d.toString('latin1');
        if (rest.length > 0 && answer.includes('100 Continue\r\n\r\n')) {
          for (const b of rest) socket.write(b);
          rest = [];
        }
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve(answer);
      }, ms);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(answer);
      });
      for (const b of afterContinue ? bytes.slice(0, 1) : bytes) socket.write(b);
    });
  }

  it("held: a body refused 413 (announced or chunked), a body its client drops, a 100-continue body and a refusal of the share itself all give the key's share back", async () => {
    const upstream = await echoUpstream(cleanups);
    const a = { label: 'a', key: newKey(), capacity: 1000 };
    const gateway = await startTestGateway(
      configFor(upstream.url, [a], 'limits:\n  max_body_bytes: 64KiB\n  max_buffered_bytes: 256KiB\n'),
    );
    cleanups.push(async () => void (await gateway.close(200)));
    const u = new URL(gateway.mcpUrl);
    const head = (extra: string) =>
      `POST /mcp HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${a.key}\r\nAccept: ${ACCEPT}\r\nContent-Type: application/json\r\n${extra}\r\n`;
    const works = async (id: number) => {
      const res = await post(gateway.mcpUrl, a.key, call(id));
      assert.equal(res.status, 200, res.text);
    };
    await works(1);
    // The key's share is 64 KiB (a quarter of 256 KiB, and max_body_bytes): a 60 KiB body held back
    // leaves less than the next 8 KiB body, which is refused (503).
    const held = callOfSize(2, 60 * 1024);
    const hold = partialPost(gateway.mcpUrl, headersFor(a.key), held, held.length - 5);
    await waitFor(() => gateway.budget.used >= 56 * 1024 || undefined, 3000, 'the held body');
    const refused = await post(gateway.mcpUrl, a.key, callOfSize(3, 8 * 1024));
    assert.equal(refused.status, 503, refused.text);
    hold.destroy();
    await waitFor(() => gateway.auditLines.some((l) => l.reason === 'ERR_CLIENT_ABORTED') || undefined);
    await works(4);
    // Announced too large.
    assert.match(await raw(gateway.mcpUrl, [head(`Content-Length: ${128 * 1024}\r\n`)]), /^HTTP\/1\.1 413/);
    await works(5);
    // Chunked, past the cap while being read.
    const big = Buffer.from(callOfSize(6, 100 * 1024));
    assert.match(
      await raw(gateway.mcpUrl, [
        head('Transfer-Encoding: chunked\r\n'),
        `${big.length.toString(16)}\r\n`,
        big,
        '\r\n0\r\n\r\n',
      ]),
      /^HTTP\/1\.1 413/,
    );
    await works(7);
    // Expect: 100-continue, the body sent once invited.
    const body = call(8);
    const cont = await raw(
      gateway.mcpUrl,
      [head(`Expect: 100-continue\r\nContent-Length: ${body.length}\r\n`), body],
      {
        afterContinue: true,
        ms: 800,
      },
    );
    assert.match(cont, /100 Continue[\s\S]*HTTP\/1\.1 200/);
    await works(9);
    // Expect: 100-continue, the client leaves without sending its body.
    const s = partialPost(gateway.mcpUrl, { ...headersFor(a.key), expect: '100-continue' }, call(10), 0);
    await new Promise((r) => setTimeout(r, 150));
    s.destroy();
    await new Promise((r) => setTimeout(r, 150));
    await works(11);
    // Nothing is left reserved: the key's share is released with the budget it wraps.
    await waitFor(() => gateway.budget.used === 0 || undefined, 3000, 'every reservation given back');
  });
});

describe('review15: legit clients under the new caps', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('held: the real SDK client making 20 concurrent tools/call (300 KB arguments each) under default limits is never refused', async () => {
    const upstream = await startSdkUpstream();
    cleanups.push(() => upstream.close());
    const key = newKey();
    const gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
auth:
  session_secret: "${SECRET}"
keys:
  - label: sdk
    hash: "sha256:${sha256Hex(key)}"
    allow: ["echo"]
`);
    cleanups.push(async () => void (await gateway.close(300)));
    const client = new Client({ name: 'review15', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    });
    await client.connect(transport);
    cleanups.push(() => client.close());
    const big = 'm'.repeat(300 * 1024);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.callTool({ name: 'echo', arguments: { message: `${i}${big}` } }),
      ),
    );
    for (const r of results) assert.ok(!r.isError, JSON.stringify(r).slice(0, 200));
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow');
    assert.deepEqual(refused, []);
  });

  it('held: a cursor of exactly 8 KiB (and one with NUL bytes, and multi-byte ones at the bound) comes back to the upstream as it was; one byte more is not passed on', () => {
    const cursors = createCursors(Buffer.from(SECRET));
    const seal = cursors.sealerFor('k:abc');
    for (const c of [
      'a'.repeat(8192),
      '\u0000x\u0000',
      'é'.repeat(4096),
      '😀'.repeat(2048),
      'z'.repeat(254),
      'z'.repeat(253),
    ]) {
      const sealed = seal('tools', c);
      assert.ok(sealed !== undefined, `sealed ${c.length}`);
      assert.equal(cursors.open('k:abc', 'tools', sealed), c);
      assert.equal(cursors.open('k:abd', 'tools', sealed), undefined);
      assert.equal(cursors.open('k:abc', 'prompts', sealed), undefined);
    }
    assert.equal(seal('tools', 'a'.repeat(8193)), undefined);
    assert.equal(seal('tools', 'é'.repeat(4096) + 'a'), undefined);
    // Same length class: the 254- and 253-byte cursors seal to the same length (256-byte grain).
    assert.equal(seal('tools', 'z'.repeat(254))!.length, seal('tools', 'z'.repeat(1))!.length);
  });
});

describe('review15: pending cancellations per principal', () => {
  it("held: replacing a client id (across sessions too), forgetting after eviction and one key's flood keep both lists whole and another key's entry", () => {
    const t = new PendingTags(6, 3);
    const bob = t.remember('k:bob', 's1', 1, 'tb');
    const e1 = t.remember('k:al', 's1', 7, 't1');
    t.remember('k:al', 's2', 7, 't2'); // same id, another session
    const e3 = t.remember('k:al', 's1', 7, 't3'); // replaces e1
    assert.equal(t.size, 3);
    t.forget(e1, 't1'); // a stale forget: nothing
    assert.equal(t.tagFor('k:al', 's1', 7), 't3');
    for (let i = 0; i < 10; i++) t.remember('k:al', 's3', 100 + i, `f${i}`); // a flood
    assert.equal(t.tagFor('k:bob', 's1', 1), 'tb');
    assert.equal(t.tagFor('k:al', 's1', 7), undefined); // its own oldest went
    t.forget(e3, 't3'); // forget after eviction: nothing
    assert.equal(t.size, 4);
    t.forget(bob, 'tb');
    assert.equal(t.size, 3);
    for (let i = 0; i < 3; i++) assert.equal(t.tagFor('k:al', 's3', 107 + i), `f${7 + i}`);
    const again = t.remember('k:bob', undefined, 'x', 'tx');
    assert.equal(t.size, 4);
    t.forget(again, 'tx');
    assert.equal(t.size, 3);
  });
});
