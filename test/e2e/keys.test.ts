/**
 * Issue 3: API keys and session binding, end to end. Real SDK clients and a real SDK upstream
 * for the happy paths; raw fetch, node:http and net sockets for the exact wire contract of every
 * refusal. Every refusal is checked three ways: the response, the audit reason the gateway
 * recorded, and the upstream's own record (it received nothing).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { KEY_SCANNER_PATTERN, mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import type { ErrorCode } from '../../src/jsonrpc/errors.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { runCli } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';
import { rawHttp } from '../helpers/net.ts';

const newKey = () => mintKey(randomBytes(32));
const KEYS = { alice: newKey(), bob: newKey(), off: newKey(), old: newKey() };
const ALL_KEYS = Object.values(KEYS);
const SECRET = '0123456789abcdef0123456789abcdef-test';

function configFor(upstreamUrl: string, extra = ''): string {
  const entry = (label: string, key: string, more = '') =>
    `  - label: ${label}\n    hash: "sha256:${sha256Hex(key)}"\n    allow: ["*"]\n${more}`;
  return [
    'listen: 127.0.0.1:0',
    'upstream:',
    `  url: ${upstreamUrl}`,
    extra,
    'auth:',
    `  session_secret: "${SECRET}"`,
    // Generous buckets: this file is about keys, not rate limits.
    'rate_limit:',
    '  capacity: 1000',
    '  refill_per_second: 1000',
    'keys:',
    entry('alice', KEYS.alice),
    entry('bob', KEYS.bob),
    entry('off', KEYS.off, '    disabled: true\n'),
    entry('old', KEYS.old, '    expires: "2020-01-01"\n'),
  ].join('\n');
}

/**
 * A 401 answers with the request's id (the gateway reads at most 16 KiB of an unauthenticated body
 * to find it); GET and DELETE have no body, so their id is null.
 */
const NO_ID = null;

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const rpc = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify(
    params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
  );
const initialize = (id: number | string = 1) =>
  rpc(id, 'initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'keys-e2e', version: '1' },
  });

async function connectSdk(
  url: string,
  headers: Record<string, string>,
  capabilities: Record<string, unknown> = {},
) {
  const client = new Client({ name: 'keys-e2e', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport };
}

/** A response read whole, whatever sent it (fetch, node:http or a raw socket). */
interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

async function viaFetch(url: string, init: RequestInit): Promise<Answer> {
  const res = await fetch(url, init);
  const headers: IncomingHttpHeaders = {};
  res.headers.forEach((value, name) => (headers[name] = value));
  return { status: res.status, headers, body: await res.text() };
}

const viaHttp = rawHttp;

/** Raw bytes on a socket: for headers no HTTP client will send. Reads until the server closes. */
function viaSocket(url: string, bytes: Buffer): Promise<Answer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = netConnect(Number(port), hostname, () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const [statusLine = '', ...lines] = text.slice(0, split).split('\r\n');
      const headers: IncomingHttpHeaders = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(split + 4) });
    });
  });
}

describe('API keys end to end', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(configFor(upstream.url));
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  /** What the gateway recorded for one answered request (matched by its X-Request-Id). */
  function recorded(answer: Answer): Promise<RequestContext> {
    const id = answer.headers['x-request-id'];
    assert.equal(typeof id, 'string', 'every answer carries X-Request-Id');
    return waitFor(
      () => gateway.finished.find((c) => c.requestId === id),
      2000,
      `the record of request ${id}`,
    );
  }

  /** The exact 401 contract, the audit reason, and an upstream that received nothing. */
  async function assertRefused(
    send: () => Promise<Answer>,
    reason: ErrorCode,
    id: number | string | null,
  ): Promise<RequestContext> {
    const before = upstream.received.length;
    const answer = await send();
    assert.equal(answer.status, 401, `status for ${reason}: ${answer.body}`);
    assert.equal(answer.headers['www-authenticate'], 'Bearer realm="mcpgate"');
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(answer.body), {
      jsonrpc: '2.0',
      id,
      error: { code: -32001, message: 'unauthorized' },
    });
    for (const key of ALL_KEYS) assert.ok(!answer.body.includes(key), 'the answer never echoes a key');
    const ctx = await recorded(answer);
    assert.equal(ctx.reason, reason);
    assert.equal(ctx.decision, 'unauthenticated');
    assert.equal(ctx.principal, undefined);
    assert.equal(ctx.status, 401);
    assert.equal(upstream.received.length, before, 'the upstream received nothing');
    return ctx;
  }

  const post =
    (headers: Record<string, string>, id: number | string = 7, url = gateway.mcpUrl) =>
    () =>
      viaFetch(url, {
        method: 'POST',
        headers: { ...JSON_HEADERS, ...headers },
        body: rpc(id, 'tools/list'),
      });

  describe('refusals: 401, the same answer for each, a distinct audit reason', () => {
    it('no key', async () => {
      await assertRefused(post({}, 11), 'ERR_AUTH_MISSING', 11);
    });

    it('a wrong (well-formed, unknown) key', async () => {
      await assertRefused(post(bearer(newKey()), 12), 'ERR_AUTH_UNKNOWN_KEY', 12);
      // A key minted elsewhere (no mcpg_ prefix) is an opaque string: unknown, not malformed.
      await assertRefused(post(bearer('some-other-secret'), 'x'), 'ERR_AUTH_UNKNOWN_KEY', 'x');
    });

    it('a disabled key', async () => {
      await assertRefused(post(bearer(KEYS.off), 13), 'ERR_AUTH_KEY_DISABLED', 13);
    });

    it('an expired key', async () => {
      await assertRefused(post(bearer(KEYS.old), 14), 'ERR_AUTH_KEY_EXPIRED', 14);
    });

    it('GET and DELETE without a key, or with a wrong one', async () => {
      const get = (headers: Record<string, string>) => () =>
        viaFetch(gateway.mcpUrl, { method: 'GET', headers: { accept: 'text/event-stream', ...headers } });
      const del = (headers: Record<string, string>) => () =>
        viaFetch(gateway.mcpUrl, { method: 'DELETE', headers });
      await assertRefused(get({}), 'ERR_AUTH_MISSING', NO_ID);
      await assertRefused(del({}), 'ERR_AUTH_MISSING', NO_ID);
      await assertRefused(get(bearer(newKey())), 'ERR_AUTH_UNKNOWN_KEY', NO_ID);
      await assertRefused(del(bearer(KEYS.off)), 'ERR_AUTH_KEY_DISABLED', NO_ID);

      // Even with a live session id: authentication comes first, and nothing reaches the upstream.
      const init = await viaFetch(gateway.mcpUrl, {
        method: 'POST',
        headers: { ...JSON_HEADERS, ...bearer(KEYS.alice) },
        body: initialize(),
      });
      assert.equal(init.status, 200);
      const sid = init.headers['mcp-session-id'] as string;
      assert.ok(sid);
      await assertRefused(get({ 'mcp-session-id': sid }), 'ERR_AUTH_MISSING', NO_ID);
      await assertRefused(del({ 'mcp-session-id': sid }), 'ERR_AUTH_MISSING', NO_ID);
    });
  });

  describe('bad input: each refused with one reason', () => {
    const rawPost = (headers: string[]) => () =>
      viaHttp(
        gateway.mcpUrl,
        'POST',
        ['content-type', 'application/json', 'accept', 'application/json, text/event-stream', ...headers],
        rpc(20, 'tools/list'),
      );

    it('an empty Authorization header', async () => {
      await assertRefused(rawPost(['Authorization', '']), 'ERR_AUTH_EMPTY', 20);
      await assertRefused(rawPost(['X-API-Key', '']), 'ERR_AUTH_EMPTY', 20);
    });

    it('`Bearer` with no token', async () => {
      await assertRefused(rawPost(['Authorization', 'Bearer']), 'ERR_AUTH_EMPTY', 20);
      await assertRefused(rawPost(['Authorization', 'Bearer    ']), 'ERR_AUTH_EMPTY', 20);
    });

    it('two Authorization headers, even if one is valid', async () => {
      await assertRefused(
        rawPost(['Authorization', 'Bearer a', 'Authorization', 'Bearer b']),
        'ERR_AUTH_DUPLICATE',
        20,
      );
      // Node keeps only the first Authorization header: a valid first one must not win.
      const good = `Bearer ${KEYS.alice}`;
      await assertRefused(rawPost(['Authorization', good, 'Authorization', good]), 'ERR_AUTH_DUPLICATE', 20);
      await assertRefused(
        rawPost(['Authorization', good, 'Authorization', 'Bearer x']),
        'ERR_AUTH_DUPLICATE',
        20,
      );
      await assertRefused(
        rawPost(['X-API-Key', KEYS.alice, 'X-API-Key', KEYS.alice]),
        'ERR_AUTH_DUPLICATE',
        20,
      );
      // Authorization and X-API-Key that disagree.
      await assertRefused(rawPost(['Authorization', good, 'X-API-Key', KEYS.bob]), 'ERR_AUTH_DUPLICATE', 20);
    });

    it('a key with one character changed fails its checksum', async () => {
      const key = KEYS.alice;
      // One position in the random part, one in the checksum.
      for (const at of [10, key.length - 1]) {
        const c = key[at] as string;
        const changed = key.slice(0, at) + (c === 'a' ? 'b' : 'a') + key.slice(at + 1);
        assert.notEqual(changed, key);
        await assertRefused(post(bearer(changed), 21), 'ERR_AUTH_MALFORMED', 21);
      }
      // Truncated.
      await assertRefused(post(bearer(key.slice(0, -1)), 22), 'ERR_AUTH_MALFORMED', 22);
    });

    it('a key of 10 KB', async () => {
      const huge = 'k'.repeat(10 * 1024);
      await assertRefused(post(bearer(huge), 23), 'ERR_AUTH_MALFORMED', 23);
      await assertRefused(post({ 'x-api-key': huge }, 24), 'ERR_AUTH_MALFORMED', 24);
    });

    it('another scheme, or a token with a space', async () => {
      await assertRefused(post({ authorization: `Basic ${KEYS.alice}` }), 'ERR_AUTH_MALFORMED', 7);
      await assertRefused(post({ authorization: `Bearer${KEYS.alice}` }), 'ERR_AUTH_MALFORMED', 7);
      await assertRefused(post({ authorization: `Bearer ${KEYS.alice} extra` }), 'ERR_AUTH_MALFORMED', 7);
    });

    it('non-ASCII bytes in the header', async () => {
      const body = rpc(25, 'tools/list');
      const request = (credentialLine: Buffer) =>
        Buffer.concat([
          Buffer.from(
            `POST ${new URL(gateway.mcpUrl).pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
              `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
              `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n`,
            'latin1',
          ),
          credentialLine,
          Buffer.from(`\r\n\r\n${body}`, 'latin1'),
        ]);
      // The valid key with its middle character replaced by "é" (UTF-8 bytes C3 A9).
      const key = KEYS.alice;
      const mid = key.length >> 1;
      const utf8 = Buffer.concat([
        Buffer.from(`Authorization: Bearer ${key.slice(0, mid)}`, 'latin1'),
        Buffer.from('é', 'utf8'),
        Buffer.from(key.slice(mid + 1), 'latin1'),
      ]);
      await assertRefused(() => viaSocket(gateway.mcpUrl, request(utf8)), 'ERR_AUTH_MALFORMED', 25);
      // The valid key followed by a lone high byte, and a non-breaking space String#trim would eat.
      const trailing = Buffer.concat([Buffer.from(`X-API-Key: ${key}`, 'latin1'), Buffer.from([0xff])]);
      await assertRefused(() => viaSocket(gateway.mcpUrl, request(trailing)), 'ERR_AUTH_MALFORMED', 25);
      const nbsp = Buffer.concat([
        Buffer.from(`Authorization: Bearer ${key}`, 'latin1'),
        Buffer.from([0xa0]),
      ]);
      await assertRefused(() => viaSocket(gateway.mcpUrl, request(nbsp)), 'ERR_AUTH_MALFORMED', 25);
    });

    it('a key in the query string is refused even beside a valid header', async () => {
      const withQuery = (query: string) => `${gateway.mcpUrl}?${query}`;
      await assertRefused(
        post(bearer(KEYS.alice), 26, withQuery(`key=${KEYS.alice}`)),
        'ERR_AUTH_KEY_IN_QUERY',
        26,
      );
      await assertRefused(
        post(bearer(KEYS.alice), 27, withQuery(`x=1&API_KEY=${KEYS.alice}`)),
        'ERR_AUTH_KEY_IN_QUERY',
        27,
      );
      await assertRefused(post({}, 28, withQuery(`access_token=${KEYS.alice}`)), 'ERR_AUTH_KEY_IN_QUERY', 28);
    });
  });

  describe('a good key', () => {
    it('works for POST, the GET stream and DELETE with the SDK client', async () => {
      const before = gateway.finished.length;
      const { client, transport } = await connectSdk(gateway.mcpUrl, bearer(KEYS.alice), { sampling: {} });
      client.setRequestHandler(CreateMessageRequestSchema, async () => ({
        role: 'assistant',
        content: { type: 'text', text: 'sampled-by-alice' },
        model: 'test-model',
      }));
      try {
        const { tools } = await client.listTools();
        assert.ok(tools.some((t) => t.name === 'echo'));
        const echoed = await client.callTool({ name: 'echo', arguments: { message: 'hi from alice' } });
        assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: hi from alice' }]);

        // The server-initiated request travels on the GET stream, which needs the key too.
        await waitFor(
          () =>
            gateway.handler.inflight.size > 0 &&
            [...gateway.handler.inflight].some(
              (c) => c.req.method === 'GET' && c.principal?.name === 'alice',
            ),
          3000,
          'the GET stream to open',
        );
        const sampled = await client.callTool({ name: 'ask_sampling', arguments: {} });
        assert.deepEqual(sampled.content, [{ type: 'text', text: 'sampled: sampled-by-alice' }]);

        const sid = transport.sessionId;
        assert.ok(sid);
        await transport.terminateSession();
        const upstreamSid = sid.slice(0, sid.lastIndexOf('.'));
        assert.ok(
          upstream.received.some((r) => r.method === 'DELETE' && r.headers['mcp-session-id'] === upstreamSid),
        );
      } finally {
        await client.close();
      }
      const mine = await waitFor(
        () => {
          const list = gateway.finished.slice(before);
          return list.some((c) => c.req.method === 'GET') ? list : undefined;
        },
        2000,
        'the GET stream to be recorded',
      );
      for (const method of ['POST', 'GET', 'DELETE']) {
        const ctxs = mine.filter((c) => c.req.method === method);
        assert.ok(ctxs.length > 0, `a ${method} was made`);
        for (const c of ctxs) {
          assert.equal(c.principal?.name, 'alice', method);
          assert.equal(c.reason, undefined, `${method}: ${c.reason}`);
          assert.ok(c.status === 200 || c.status === 202, `${method} status ${c.status}`);
        }
      }
    });

    it('works in an X-API-Key header', async () => {
      const before = gateway.finished.length;
      const { client } = await connectSdk(gateway.mcpUrl, { 'X-API-Key': KEYS.bob });
      try {
        const echoed = await client.callTool({ name: 'echo', arguments: { message: 'hi from bob' } });
        assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: hi from bob' }]);
      } finally {
        await client.close();
      }
      const mine = gateway.finished.slice(before);
      assert.ok(mine.some((c) => c.req.method === 'POST' && c.calls.some((call) => call.tool === 'echo')));
      for (const c of mine) assert.equal(c.principal?.name, 'bob');
    });

    it('accepts the Bearer scheme in any case, and the same key in both headers', async () => {
      for (const headers of [
        { authorization: `bearer ${KEYS.alice}` },
        { authorization: `BEARER ${KEYS.alice}` },
        { authorization: `Bearer \t ${KEYS.alice}` },
        { authorization: `Bearer ${KEYS.alice}`, 'x-api-key': KEYS.alice },
      ]) {
        const answer = await viaFetch(gateway.mcpUrl, {
          method: 'POST',
          headers: { ...JSON_HEADERS, ...headers },
          body: initialize(),
        });
        assert.equal(answer.status, 200, JSON.stringify(Object.keys(headers)));
        assert.ok(answer.headers['mcp-session-id']);
        const ctx = await recorded(answer);
        assert.equal(ctx.principal?.name, 'alice');
      }
    });
  });

  describe('sessions are bound to the key that opened them', () => {
    async function openSession(key: string, url = gateway.mcpUrl): Promise<string> {
      const init = await viaFetch(url, {
        method: 'POST',
        headers: { ...JSON_HEADERS, ...bearer(key) },
        body: initialize(),
      });
      assert.equal(init.status, 200);
      const sid = init.headers['mcp-session-id'];
      assert.equal(typeof sid, 'string');
      const done = await viaFetch(url, {
        method: 'POST',
        headers: {
          ...JSON_HEADERS,
          ...bearer(key),
          'mcp-session-id': sid as string,
          'mcp-protocol-version': '2025-06-18',
        },
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      });
      assert.equal(done.status, 202);
      return sid as string;
    }
    const inSession = (key: string, sid: string, id: number, url = gateway.mcpUrl) =>
      viaFetch(url, {
        method: 'POST',
        headers: {
          ...JSON_HEADERS,
          ...bearer(key),
          'mcp-session-id': sid,
          'mcp-protocol-version': '2025-06-18',
        },
        body: rpc(id, 'tools/call', { name: 'echo', arguments: { message: `call ${id}` } }),
      });

    async function assertNotFound(
      upstreamOf: SdkUpstream,
      send: () => Promise<Answer>,
      gw = gateway,
    ): Promise<void> {
      const before = upstreamOf.received.length;
      const answer = await send();
      assert.equal(answer.status, 404, answer.body);
      assert.equal(answer.headers['content-type'], 'application/json');
      const body = JSON.parse(answer.body) as { jsonrpc: string; error: { code: number; message: string } };
      assert.equal(body.jsonrpc, '2.0');
      assert.deepEqual(body.error, { code: -32004, message: 'session not found' });
      const id = answer.headers['x-request-id'];
      const ctx = await waitFor(() => gw.finished.find((c) => c.requestId === id), 2000, 'the 404 record');
      assert.equal(ctx.reason, 'ERR_SESSION_NOT_FOUND');
      assert.equal(upstreamOf.received.length, before, 'the upstream received nothing');
    }

    it("key B gets 404 for key A's session and never reaches the upstream; A keeps working", async () => {
      const sid = await openSession(KEYS.alice);
      await assertNotFound(upstream, () => inSession(KEYS.bob, sid, 31));
      await assertNotFound(upstream, () =>
        viaFetch(gateway.mcpUrl, {
          method: 'GET',
          headers: { accept: 'text/event-stream', ...bearer(KEYS.bob), 'mcp-session-id': sid },
        }),
      );
      await assertNotFound(upstream, () =>
        viaFetch(gateway.mcpUrl, {
          method: 'DELETE',
          headers: { ...bearer(KEYS.bob), 'mcp-session-id': sid },
        }),
      );

      const before = upstream.received.length;
      const ok = await inSession(KEYS.alice, sid, 32);
      assert.equal(ok.status, 200);
      assert.match(ok.body, /Echo: call 32/);
      assert.equal(upstream.received.length, before + 1);
      // The upstream sees its own id, never the signed one the client holds.
      assert.equal(upstream.received.at(-1)?.headers['mcp-session-id'], sid.slice(0, sid.lastIndexOf('.')));
    });

    it('a tampered or unsigned session id gets 404', async () => {
      const sid = await openSession(KEYS.alice);
      const dot = sid.lastIndexOf('.');
      const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);
      for (const bad of [
        flip(sid, sid.length - 1), // the MAC
        flip(sid, 0), // the upstream id under the MAC
        sid.slice(0, dot), // the bare upstream id
        `${sid}x`,
        sid.slice(0, -1),
        'no-such-session',
      ]) {
        assert.notEqual(bad, sid);
        await assertNotFound(upstream, () => inSession(KEYS.alice, bad, 33));
      }
    });

    it('survive a gateway restart when auth.session_secret is set', async () => {
      const config = configFor(upstream.url);
      const first = await startTestGateway(config);
      let sid: string;
      try {
        sid = await openSession(KEYS.alice, first.mcpUrl);
      } finally {
        await first.close(200);
      }
      const second = await startTestGateway(config);
      try {
        assert.notEqual(second.mcpUrl, first.mcpUrl);
        const before = upstream.received.length;
        const ok = await inSession(KEYS.alice, sid, 34, second.mcpUrl);
        assert.equal(ok.status, 200, ok.body);
        assert.match(ok.body, /Echo: call 34/);
        assert.equal(upstream.received.length, before + 1);
        await assertNotFound(upstream, () => inSession(KEYS.bob, sid, 35, second.mcpUrl), second);
      } finally {
        await second.close(200);
      }
    });
  });

  // Last in this describe: it checks everything the upstream received from every test above.
  it("the upstream never receives the client's key, Authorization, X-API-Key or Cookie", async () => {
    // One more request carrying every credential-looking header a client might send.
    const answer = await viaFetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'x-api-key': KEYS.alice, cookie: `session=${KEYS.alice}` },
      body: initialize(),
    });
    assert.equal(answer.status, 200);
    assert.ok(upstream.received.length > 10, 'the tests above reached the upstream');
    for (const r of upstream.received) {
      const seen = JSON.stringify(r.headers) + r.body;
      for (const key of ALL_KEYS) assert.ok(!seen.includes(key), 'a client key reached the upstream');
      assert.equal(r.headers.authorization, undefined);
      assert.equal(r.headers['x-api-key'], undefined);
      assert.equal(r.headers.cookie, undefined);
    }
  });
});

describe('upstream.headers: the upstream sees its own credential, never the client key', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(
      configFor(upstream.url, '  headers:\n    Authorization: "Bearer upstream-secret"'),
    );
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  it('replaces the client credential with the configured one on every request', async () => {
    const { client, transport } = await connectSdk(gateway.mcpUrl, bearer(KEYS.alice));
    try {
      await client.listTools();
      await client.callTool({ name: 'echo', arguments: { message: 'x' } });
      await transport.terminateSession();
    } finally {
      await client.close();
    }
    const raw = await viaFetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, 'x-api-key': KEYS.bob, cookie: 'c=1' },
      body: initialize(),
    });
    assert.equal(raw.status, 200);
    assert.ok(upstream.received.some((r) => r.method === 'DELETE'));
    assert.ok(upstream.received.length >= 4);
    for (const r of upstream.received) {
      assert.equal(r.headers.authorization, 'Bearer upstream-secret', `${r.method}`);
      assert.equal(r.headers['x-api-key'], undefined);
      assert.equal(r.headers.cookie, undefined);
      const seen = JSON.stringify(r.headers) + r.body;
      for (const key of ALL_KEYS) assert.ok(!seen.includes(key), 'a client key reached the upstream');
    }
  });
});

describe('mcpgate keygen', () => {
  it('prints a key whose SHA-256 is the printed hash, never the same key twice', async () => {
    const runs = await Promise.all([
      runCli(['keygen', '--label', 'one', '--json']),
      runCli(['keygen', '--label', 'two', '--json']),
    ]);
    const printed = runs.map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { label: string; key: string; hash: string };
    });
    for (const p of printed) {
      assert.match(p.key, new RegExp(`^${KEY_SCANNER_PATTERN}$`));
      assert.equal(p.hash, `sha256:${sha256Hex(p.key)}`);
    }
    assert.deepEqual(
      printed.map((p) => p.label),
      ['one', 'two'],
    );
    assert.notEqual(printed[0]!.key, printed[1]!.key);
    assert.notEqual(printed[0]!.hash, printed[1]!.hash);
  });

  it('prints a config snippet that parses, passes `validate`, and lets its key in', async () => {
    const run = await runCli(['keygen', '--label', 'snippet', '--allow', 'echo']);
    assert.equal(run.code, 0, run.stderr);
    const key = new RegExp(KEY_SCANNER_PATTERN).exec(run.stdout)?.[0];
    assert.ok(key, 'the key is printed');
    const start = run.stdout.indexOf('  - label:');
    assert.ok(start > 0, 'the snippet is printed');
    const snippet = run.stdout.slice(start);
    assert.ok(!snippet.includes(key), 'the snippet holds only the hash');
    assert.deepEqual(parseYaml(`keys:\n${snippet}`), {
      keys: [{ label: 'snippet', hash: `sha256:${sha256Hex(key)}`, allow: ['echo'] }],
    });

    const upstream = await startSdkUpstream();
    const dir = await mkdtemp(join(tmpdir(), 'mcpgate-keys-'));
    try {
      const config = `listen: 127.0.0.1:0\nupstream:\n  url: ${upstream.url}\nkeys:\n${snippet}`;
      const file = join(dir, 'mcpgate.yaml');
      await writeFile(file, config);
      const validated = await runCli(['validate', '--config', file]);
      assert.equal(validated.code, 0, validated.stderr);
      assert.match(validated.stdout, /ok .*1 key\(s\)/);

      const gateway = await startTestGateway(config);
      try {
        const { client } = await connectSdk(gateway.mcpUrl, bearer(key));
        try {
          const echoed = await client.callTool({ name: 'echo', arguments: { message: 'minted' } });
          assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: minted' }]);
          // `--allow echo` and nothing else.
          assert.deepEqual(
            (await client.listTools()).tools.map((t) => t.name),
            ['echo'],
          );
        } finally {
          await client.close();
        }
      } finally {
        await gateway.close(200);
      }
    } finally {
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
