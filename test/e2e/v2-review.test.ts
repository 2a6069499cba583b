/**
 * Hands-on attack review of the stateless 2026-07-28 revision: `Mcp-Method` / `Mcp-Name` /
 * `Mcp-Param-*` headers against the body, `subscriptions/listen`, `server/discover`, revisions mixed
 * on one gateway, and the real 2.x client with a key that may use little, against the 2.x upstream.
 */
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import assert from 'node:assert/strict';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { startV2Upstream, V2_RESOURCE_URI } from '../helpers/v2-upstream.ts';
import type { V2Upstream } from '../helpers/v2-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { rawHttp } from '../helpers/net.ts';

const MODERN = '2026-07-28';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const HIDDEN_URI = 'file:///private/secret.md';
const key = newKey();
const other = newKey();

interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/** The gateway of both describes: `little` may use echo and the public readme, `other` everything. */
const twoKeys = (upstreamUrl: string) =>
  reviewConfig(
    upstreamUrl,
    [
      { label: 'little', key, allow: ['echo'], resources: [V2_RESOURCE_URI] },
      { label: 'other', key: other, allow: ['*'], resources: ['file:///*'] },
    ],
    '',
    { secret: 's'.repeat(40), resources: [V2_RESOURCE_URI] },
  );

describe('2026-07-28 attack review (v2 upstream, a key that may use echo and the public readme)', () => {
  let upstream: V2Upstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startV2Upstream();
    gateway = await startTestGateway(twoKeys(upstream.url));
  });
  after(async () => {
    await gateway.close(1000);
    await upstream.close();
  });

  /** POSTs one body with the 2026 headers (overridable) and returns status and parsed body. */
  async function post(body: unknown, headers: Record<string, string> = {}, as = key): Promise<Answer> {
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        authorization: `Bearer ${as}`,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  }
  const call = (name: string, id: number | string = 1, args: Record<string, unknown> = {}) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, _meta: ENVELOPE },
  });
  const rpcCode = (a: Answer) => (a.body as { error?: { code?: number } } | undefined)?.error?.code;
  /** The upstream received nothing while `fn` ran. */
  async function unreached<T>(fn: () => Promise<T>): Promise<T> {
    const mark = upstream.received.length;
    const out = await fn();
    assert.equal(upstream.received.length, mark, 'the upstream must not be reached');
    return out;
  }

  // 1. Headers against the body.
  it('holds: Mcp-Name naming the allowed tool while the body names a denied one is refused (-32020)', async () => {
    const a = await unreached(() => post(call('add'), { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }));
    assert.equal(a.status, 400);
    assert.equal(rpcCode(a), -32020);
  });

  it('holds: Mcp-Name naming a denied tool while the body names the allowed one is refused (-32020)', async () => {
    const a = await unreached(() => post(call('echo'), { 'mcp-method': 'tools/call', 'mcp-name': 'add' }));
    assert.equal(a.status, 400);
    assert.equal(rpcCode(a), -32020);
  });

  it('holds: Mcp-Method in another case, repeated Mcp-Name in two spellings, Mcp-Name on a batch are refused', async () => {
    const wrongCase = await unreached(() =>
      post(call('echo'), { 'mcp-method': 'Tools/Call', 'mcp-name': 'echo' }),
    );
    assert.equal(wrongCase.status, 400);
    assert.equal(rpcCode(wrongCase), -32020);
    const repeated = await unreached(() =>
      rawHttp(
        gateway.mcpUrl,
        'POST',
        [
          ['Content-Type', 'application/json'],
          ['Accept', 'application/json, text/event-stream'],
          ['MCP-Protocol-Version', MODERN],
          ['Authorization', `Bearer ${key}`],
          ['Mcp-Method', 'tools/call'],
          ['Mcp-Name', 'echo'],
          ['MCP-NAME', 'add'],
        ].flat(),
        JSON.stringify(call('echo')),
      ),
    );
    assert.equal(repeated.status, 400);
    const batch = await unreached(() =>
      post([call('echo', 1), call('echo', 2)], { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
    );
    assert.equal(batch.status, 400);
  });

  it('holds: a base64 sentinel Mcp-Name is compared decoded; a sentinel in another case is plain text', async () => {
    const b64 = (s: string) => `=?base64?${Buffer.from(s).toString('base64')}?=`;
    const ok = await post(call('echo', 1, { message: 'x' }), {
      'mcp-method': 'tools/call',
      'mcp-name': b64('echo'),
      'mcp-param-message': 'x',
    });
    assert.equal(ok.status, 200, ok.text);
    const denied = await unreached(() =>
      post(call('echo'), { 'mcp-method': 'tools/call', 'mcp-name': b64('add') }),
    );
    assert.equal(denied.status, 400);
    const upper = await unreached(() =>
      post(call('echo'), {
        'mcp-method': 'tools/call',
        'mcp-name': `=?BASE64?${Buffer.from('echo').toString('base64')}?=`,
      }),
    );
    assert.equal(upper.status, 400);
  });

  it('hole: Mcp-Name "=?base64?=" is read as plain text by the gateway but as "" by the SDK (sentinel overlap)', async () => {
    // The SDK decodes any value that starts with `=?base64?` and ends with `?=`: in `=?base64?=` the
    // two overlap and the payload is empty, so a component behind the gateway reads the name "",
    // while the gateway compared the header as the plain text `=?base64?=` to the body. A value both
    // sides cannot read alike must be refused as malformed.
    // `other` may call every tool, so only the header check stands between it and the upstream.
    const a = await unreached(() =>
      post(call('=?base64?='), { 'mcp-method': 'tools/call', 'mcp-name': '=?base64?=' }, other),
    );
    assert.equal(a.status, 400);
    assert.equal(rpcCode(a), -32020);
  });

  it('holds: Mcp-Param-* on anything but tools/call, or naming no argument, is refused', async () => {
    const onList = await unreached(() =>
      post(
        { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: ENVELOPE } },
        { 'mcp-method': 'tools/list', 'mcp-param-message': 'x' },
      ),
    );
    assert.equal(onList.status, 400);
    const noArg = await unreached(() =>
      post(call('echo', 1, { message: 'x' }), {
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-message': 'y',
      }),
    );
    assert.equal(noArg.status, 400);
  });

  // 3. Revisions.
  it('holds: MCP-Protocol-Version 2025-11-25 with a 2026-07-28 body claim is refused; the claim decides removed methods', async () => {
    const a = await unreached(() =>
      post(call('echo'), {
        'mcp-protocol-version': '2025-11-25',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
      }),
    );
    assert.equal(a.status, 400);
    assert.equal(rpcCode(a), -32020);
    const ping = await unreached(() =>
      post({ jsonrpc: '2.0', id: 3, method: 'ping', params: { _meta: ENVELOPE } }, { 'mcp-method': 'ping' }),
    );
    assert.equal(ping.status, 404);
    assert.equal(rpcCode(ping), -32601);
  });

  it('holds: server/discover through the gateway names no tool, prompt or resource', async () => {
    const a = await post(
      { jsonrpc: '2.0', id: 9, method: 'server/discover', params: { _meta: ENVELOPE } },
      { 'mcp-method': 'server/discover' },
    );
    assert.equal(a.status, 200, a.text);
    for (const hidden of ['"add"', 'progress', 'greeting', 'grüße'])
      assert.ok(!a.text.includes(hidden), a.text);
  });

  it('holds: a 2025 session id the key never had on a 2026 request is not forwarded as a session', async () => {
    const a = await unreached(() =>
      post(call('echo'), {
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-session-id': 'not-a-sealed-id',
      }),
    );
    assert.ok(a.status >= 400, a.text);
  });

  // 2. subscriptions/listen.
  const listen = (notifications: unknown, id: number | string = 7) => ({
    jsonrpc: '2.0',
    id,
    method: 'subscriptions/listen',
    params: { notifications, _meta: ENVELOPE },
  });
  it('holds: listen to a hidden resource, among allowed ones, escaped, or repeated, never reaches the upstream', async () => {
    for (const body of [
      JSON.stringify(listen({ resourceSubscriptions: [V2_RESOURCE_URI, HIDDEN_URI] })),
      JSON.stringify(listen({ resourceSubscriptions: ['file:///public/../private/secret.md'] })),
      JSON.stringify(listen({ resourceSubscriptions: ['file:///public/%2e%2e/private/secret.md'] })),
      `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["${HIDDEN_URI}"]},"_meta":${JSON.stringify(ENVELOPE)},"notifications":{"resourceSubscriptions":["${V2_RESOURCE_URI}"]}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resourceSubscriptions":["${V2_RESOURCE_URI}"],"resourceSubscriptions":["${HIDDEN_URI}"]},"_meta":${JSON.stringify(ENVELOPE)}}}`,
      `{"jsonrpc":"2.0","id":7,"method":"subscriptions/listen","params":{"notifications":{"resource\\u0053ubscriptions":["${HIDDEN_URI}"]},"_meta":${JSON.stringify(ENVELOPE)}}}`,
      JSON.stringify(listen({ ResourceSubscriptions: [HIDDEN_URI] })),
      JSON.stringify(listen({ resourceSubscriptions: [HIDDEN_URI], taskIds: [] })),
      JSON.stringify(listen({ taskIds: ['someone-elses-task'] })),
    ]) {
      const mark = upstream.received.length;
      const a = await post(body, { 'mcp-method': 'subscriptions/listen' });
      const forwarded = upstream.received.slice(mark).map((r) => r.body);
      assert.ok(
        // Refused, or (a repeated key) forwarded as judged: the last one, re-serialised alone.
        !forwarded.some((b) => b.includes('private')) && (rpcCode(a) !== undefined || forwarded.length === 1),
        `${body} → ${a.status} ${a.text} forwarded ${forwarded.join()}`,
      );
    }
  });

  it('holds: a huge resourceSubscriptions list of allowed URIs is bounded by the body limits', async () => {
    const uris = Array.from({ length: 200_000 }, () => V2_RESOURCE_URI);
    const a = await unreached(() =>
      post(listen({ resourceSubscriptions: uris }), { 'mcp-method': 'subscriptions/listen' }),
    );
    assert.ok(a.status === 413 || a.status === 400, `${a.status}`);
  });

  it('holds: listen with Mcp-Name, or inside a batch, is refused', async () => {
    const named = await unreached(() =>
      post(listen({ resourceSubscriptions: [V2_RESOURCE_URI] }), {
        'mcp-method': 'subscriptions/listen',
        'mcp-name': V2_RESOURCE_URI,
      }),
    );
    assert.equal(named.status, 400);
    const batch = await unreached(() => post([listen({ toolsListChanged: true }, 1), call('echo', 2)], {}));
    assert.ok(batch.status >= 400, batch.text);
  });

  // 5. The real 2.x client, with a key.
  async function client(as: string): Promise<Client> {
    const c = new Client({ name: 'v2-review', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
    await c.connect(
      new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${as}` } },
      }),
    );
    return c;
  }

  it('holds (2.x client): filtered tools/list, allowed call, denied call, listen open and close', async () => {
    const c = await client(key);
    try {
      assert.equal(c.getNegotiatedProtocolVersion(), MODERN);
      const tools = await c.listTools();
      assert.deepEqual(
        tools.tools.map((t) => t.name),
        ['echo'],
      );
      const echoed = await c.callTool({ name: 'echo', arguments: { message: 'héllo ✓' } });
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: héllo ✓' }]);
      await assert.rejects(c.callTool({ name: 'add', arguments: { a: 1, b: 2 } }), /add/);
      const resources = await c.listResources();
      assert.deepEqual(
        resources.resources.map((r) => r.uri),
        [V2_RESOURCE_URI],
      );
      const prompts = await c.listPrompts();
      assert.deepEqual(prompts.prompts, []);
      const sub = await c.listen({ resourceSubscriptions: [V2_RESOURCE_URI], toolsListChanged: true });
      await sub.close();
      await assert.rejects(c.listen({ resourceSubscriptions: [HIDDEN_URI] }));
    } finally {
      await c.close();
    }
  });
});

/** An upstream that holds every subscriptions/listen open, so a test can write events on it. */
async function startListenUpstream() {
  const streams: { tag: unknown; res: ServerResponse }[] = [];
  const seen: string[] = [];
  const http = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      seen.push(text);
      const m = JSON.parse(text || '{}') as {
        id?: unknown;
        method?: string;
        params?: { notifications?: unknown };
      };
      if (m.method !== 'subscriptions/listen') return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `data: ${JSON.stringify({
          jsonrpc: '2.0',
          method: 'notifications/subscriptions/acknowledged',
          params: { notifications: m.params?.notifications, _meta: { [SUB]: m.id } },
        })}\n\n`,
      );
      streams.push({ tag: m.id, res });
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    streams,
    seen,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

const SUB = 'io.modelcontextprotocol/subscriptionId';

describe('2026-07-28 attack review: what an upstream writes on a listen stream', () => {
  let upstream: Awaited<ReturnType<typeof startListenUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startListenUpstream();
    gateway = await startTestGateway(twoKeys(upstream.url));
  });
  after(async () => {
    await gateway.close(500);
    await upstream.close();
  });

  async function openListen(as: string, id: unknown, uris: string[]) {
    const controller = new AbortController();
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      signal: controller.signal,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN,
        'mcp-method': 'subscriptions/listen',
        authorization: `Bearer ${as}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: uris }, _meta: ENVELOPE },
      }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    return {
      async until(marker: string, ms = 3000): Promise<string> {
        const deadline = Date.now() + ms;
        while (!text.includes(marker)) {
          if (Date.now() > deadline) throw new Error(`no ${marker} in ${text}`);
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        return text;
      },
      close: () => controller.abort(),
    };
  }

  const updated = (uri: string, sub: unknown) =>
    `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri, _meta: { [SUB]: sub } } })}\n\n`;

  it("holds: a listen stream drops hidden updates and never passes another key's subscription id", async () => {
    const b = await openListen(other, 'b-subscription', [HIDDEN_URI]);
    await b.until('acknowledged');
    const a = await openListen(key, 7, [V2_RESOURCE_URI]);
    const ackA = await a.until('acknowledged');
    assert.ok(ackA.includes(`"${SUB}":7`), ackA);
    assert.equal(upstream.streams.length, 2);
    const [sb, sa] = upstream.streams as [(typeof upstream.streams)[0], (typeof upstream.streams)[0]];
    // Another key's tag on this key's stream, an update of a hidden resource, a repeated uri,
    // an escaped uri key, then a control event that must pass.
    sa.res.write(updated(V2_RESOURCE_URI, sb.tag));
    sa.res.write(updated(HIDDEN_URI, sa.tag));
    sa.res.write(
      `data: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"${HIDDEN_URI}","uri":"${V2_RESOURCE_URI}","_meta":{"${SUB}":${JSON.stringify(sa.tag)}}}}\n\n`,
    );
    sa.res.write(
      `data: {"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"\\u0075ri":"${HIDDEN_URI}","_meta":{"${SUB}":${JSON.stringify(sa.tag)}}}}\n\n`,
    );
    sa.res.write(
      `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'control', _meta: { [SUB]: sa.tag } } })}\n\n`,
    );
    const seen = await a.until('control');
    if (process.env.V2_REVIEW_DEBUG) console.log(seen);
    assert.ok(!seen.includes('private'), seen);
    assert.ok(!seen.includes('b-subscription'), seen);
    assert.ok(!seen.includes(String(sb.tag)), seen);
    assert.ok(!seen.includes(String(sa.tag)), seen);
    a.close();
    b.close();
  });
});
