/**
 * The stateless 2026-07-28 revision end to end: a @modelcontextprotocol/client 2.x client through
 * the gateway to a @modelcontextprotocol/server 2.x upstream (and to a v1 SDK upstream), compared
 * with the same calls made directly. 2026-07-28 requests carry `Mcp-Method` / `Mcp-Name` /
 * `Mcp-Param-*` headers mirroring the body; the gateway must pass them through unchanged and
 * (once the policy step checks them) refuse a request whose headers and body disagree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { FetchLike } from '@modelcontextprotocol/client';
import { startV2Upstream, V2_RESOURCE_URI, V2_SERVER_INFO } from '../helpers/v2-upstream.ts';
import type { V2Upstream } from '../helpers/v2-upstream.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { forwards, forwardedIds } from '../helpers/tags.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { rawHttp } from '../helpers/net.ts';

const MODERN = '2026-07-28';
/** What the 2.x client negotiates on the 2025-era path (its `initialize` handshake). */
const LEGACY = '2025-11-25';

const open = (upstreamUrl: string) => `
listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
auth:
  allow_unauthenticated: true
`;

type Negotiation = 'auto' | 'legacy' | { pin: string };

interface Sent {
  readonly headers: Headers;
  readonly body: { id?: unknown; method?: string };
  responseType: string | null;
}

/** A fetch that records each JSON-RPC POST the client sends, with its headers. */
function recordingFetch(): { fetch: FetchLike; sent: Sent[] } {
  const sent: Sent[] = [];
  const recording: FetchLike = async (url, init) => {
    const record: Sent | undefined =
      init?.method === 'POST' && typeof init.body === 'string'
        ? {
            headers: new Headers(init.headers),
            body: JSON.parse(init.body) as Sent['body'],
            responseType: null,
          }
        : undefined;
    if (record) sent.push(record);
    const response = await fetch(url, init);
    if (record) record.responseType = response.headers.get('content-type');
    return response;
  };
  return { fetch: recording, sent };
}

async function connect(url: string, mode: Negotiation = 'auto', fetchImpl?: FetchLike) {
  const client = new Client({ name: 'e2e-v2', version: '1.0.0' }, { versionNegotiation: { mode } });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), fetchImpl ? { fetch: fetchImpl } : undefined),
  );
  return client;
}

/** The base64 sentinel form the 2026-07-28 client uses for header values that are not plain ASCII. */
const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const MODERN_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': MODERN,
};

/** Every MCP routing header of a request, lower-cased, for comparison. */
function mcpHeaders(entries: Iterable<[string, string | string[] | undefined]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (
      value === undefined ||
      !(
        lower === 'mcp-method' ||
        lower === 'mcp-name' ||
        lower === 'mcp-protocol-version' ||
        lower.startsWith('mcp-param-')
      )
    )
      continue;
    out[lower] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

describe('2.x client (2026-07-28) through the gateway to a 2.x stateless upstream', () => {
  let upstream: V2Upstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startV2Upstream();
    gateway = await startTestGateway(open(upstream.url));
  });
  after(async () => {
    await gateway.close(1000);
    await upstream.close();
  });

  it('negotiates 2026-07-28 and gives the same results through the gateway as without it', async () => {
    const direct = await connect(upstream.url);
    const via = await connect(gateway.mcpUrl);
    try {
      assert.equal(via.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(direct.getNegotiatedProtocolVersion(), MODERN);
      assert.equal(via.getProtocolEra(), 'modern');
      assert.deepEqual(via.getServerVersion(), direct.getServerVersion());
      assert.equal(via.getServerVersion()?.name, V2_SERVER_INFO.name);

      const tools = await via.listTools();
      assert.deepEqual(tools, await direct.listTools());
      assert.deepEqual(
        tools.tools.map((t) => t.name),
        ['echo', 'add', 'progress'],
      );
      const echo = { name: 'echo', arguments: { message: 'héllo ✓' } };
      const echoed = await via.callTool(echo);
      assert.deepEqual(echoed, await direct.callTool(echo));
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: héllo ✓' }]);
      const add = { name: 'add', arguments: { a: 2, b: 40 } };
      const sum = await via.callTool(add);
      assert.deepEqual(sum, await direct.callTool(add));
      assert.deepEqual(sum.content, [{ type: 'text', text: '42' }]);

      const progressVia: unknown[] = [];
      const progressDirect: unknown[] = [];
      const slowArgs = { name: 'progress', arguments: { steps: 3, delayMs: 10 } };
      const doneVia = await via.callTool(slowArgs, { onprogress: (p) => void progressVia.push(p) });
      const doneDirect = await direct.callTool(slowArgs, { onprogress: (p) => void progressDirect.push(p) });
      assert.deepEqual(doneVia, doneDirect);
      assert.deepEqual(progressVia, progressDirect);
      assert.equal(progressVia.length, 3);

      const prompts = await via.listPrompts();
      assert.deepEqual(prompts, await direct.listPrompts());
      assert.deepEqual(
        prompts.prompts.map((p) => p.name),
        ['greeting', 'grüße'],
      );
      for (const name of ['greeting', 'grüße'])
        assert.deepEqual(await via.getPrompt({ name }), await direct.getPrompt({ name }));

      const resources = await via.listResources();
      assert.deepEqual(resources, await direct.listResources());
      assert.deepEqual(
        resources.resources.map((r) => r.uri),
        [V2_RESOURCE_URI],
      );
      const read = await via.readResource({ uri: V2_RESOURCE_URI });
      assert.deepEqual(read, await direct.readResource({ uri: V2_RESOURCE_URI }));
      assert.equal(read.contents[0]?.uri, V2_RESOURCE_URI);
    } finally {
      await direct.close();
      await via.close();
    }
  });

  it('passes Mcp-Method, Mcp-Name, Mcp-Param-* and MCP-Protocol-Version to the upstream unchanged', async () => {
    const mark = upstream.received.length;
    const { fetch: recording, sent } = recordingFetch();
    const client = await connect(gateway.mcpUrl, 'auto', recording);
    try {
      await client.listTools();
      await client.callTool({ name: 'echo', arguments: { message: 'héllo ✓' } });
      await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } });
      await client.getPrompt({ name: 'greeting' });
      await client.getPrompt({ name: 'grüße' });
      await client.readResource({ uri: V2_RESOURCE_URI });
    } finally {
      await client.close();
    }
    const arrived = upstream.received.slice(mark).filter((r) => r.method === 'POST');
    assert.equal(arrived.length, sent.length);
    for (const request of sent) {
      const at = arrived.find((r) => {
        const body = JSON.parse(r.body) as Sent['body'];
        return forwardedIds(r.body)[0] === request.body.id && body.method === request.body.method;
      });
      assert.ok(at, `upstream never received ${request.body.method} ${String(request.body.id)}`);
      // The same message, under the gateway's tag for its id.
      assert.deepEqual({ ...(JSON.parse(at.body) as object), id: request.body.id }, request.body);
      assert.deepEqual(
        mcpHeaders(Object.entries(at.headers)),
        mcpHeaders(request.headers.entries()),
        `headers of ${request.body.method}`,
      );
    }

    // And the values are the ones the 2026-07-28 revision prescribes (so the comparison above
    // compared something).
    const byMethod = (method: string, name?: string) =>
      arrived
        .map((r) => r.headers)
        .filter((h) => h['mcp-method'] === method && (name === undefined || h['mcp-name'] === name))
        .map((h) => mcpHeaders(Object.entries(h)));
    assert.deepEqual(byMethod('server/discover'), [
      { 'mcp-method': 'server/discover', 'mcp-protocol-version': MODERN },
    ]);
    assert.deepEqual(byMethod('tools/list'), [
      { 'mcp-method': 'tools/list', 'mcp-protocol-version': MODERN },
    ]);
    assert.deepEqual(byMethod('tools/call', 'echo'), [
      {
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-message': b64('héllo ✓'),
        'mcp-protocol-version': MODERN,
      },
    ]);
    assert.deepEqual(byMethod('tools/call', 'add'), [
      { 'mcp-method': 'tools/call', 'mcp-name': 'add', 'mcp-protocol-version': MODERN },
    ]);
    assert.equal(byMethod('prompts/get', 'greeting').length, 1);
    assert.equal(byMethod('prompts/get', b64('grüße')).length, 1);
    assert.deepEqual(byMethod('resources/read'), [
      { 'mcp-method': 'resources/read', 'mcp-name': V2_RESOURCE_URI, 'mcp-protocol-version': MODERN },
    ]);
    assert.ok(arrived.every((r) => r.headers['mcp-protocol-version'] === MODERN));
    assert.ok(arrived.every((r) => r.status === 200));
  });

  it('streams progress notifications on the 2026-07-28 response before the result', async () => {
    const { fetch: recording, sent } = recordingFetch();
    const client = await connect(gateway.mcpUrl, 'auto', recording);
    try {
      const started = performance.now();
      const at: number[] = [];
      const result = await client.callTool(
        { name: 'progress', arguments: { steps: 3, delayMs: 300 } },
        {
          onprogress: () => void at.push(performance.now() - started),
        },
      );
      const done = performance.now() - started;
      assert.deepEqual(result.content, [{ type: 'text', text: 'done after 3 steps' }]);
      assert.equal(at.length, 3);
      // The upstream sleeps 300 ms after each notification: the first one must arrive long before
      // the result, i.e. the gateway did not hold the upgraded SSE response back until it ended.
      assert.ok(at[0]! < done - 400, `first progress at ${at[0]} ms, result at ${done} ms`);
      assert.equal(sent.find((s) => s.body.method === 'tools/call')?.responseType, 'text/event-stream');
    } finally {
      await client.close();
    }
  });

  it('serves a 2.x client in its default (2025-era) mode the same way, with no 2026 headers', async () => {
    const mark = upstream.received.length;
    const direct = await connect(upstream.url, 'legacy');
    const via = await connect(gateway.mcpUrl, 'legacy');
    try {
      assert.equal(via.getNegotiatedProtocolVersion(), LEGACY);
      assert.equal(direct.getNegotiatedProtocolVersion(), LEGACY);
      assert.equal(via.getProtocolEra(), 'legacy');
      assert.deepEqual(await via.listTools(), await direct.listTools());
      const echo = { name: 'echo', arguments: { message: 'legacy' } };
      assert.deepEqual(await via.callTool(echo), await direct.callTool(echo));
      assert.deepEqual(await via.listPrompts(), await direct.listPrompts());
      assert.deepEqual(await via.listResources(), await direct.listResources());
    } finally {
      await direct.close();
      await via.close();
    }
    const seen = upstream.received.slice(mark);
    assert.ok(seen.some((r) => r.body.includes('"initialize"')));
    assert.ok(
      seen.every((r) => r.headers['mcp-method'] === undefined && r.headers['mcp-name'] === undefined),
    );
  });

  it('forwards a raw 2026-07-28 request whose headers agree with its body', async () => {
    // The control for the two mismatch tests below: the same request shape, consistent.
    const id = 'agree-1';
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      // echo declares `x-mcp-header: Message`, so its argument is mirrored too.
      headers: {
        ...MODERN_HEADERS,
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        'mcp-param-message': 'ok',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'ok' }, _meta: ENVELOPE },
      }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { id: unknown; result?: { content: unknown } };
    assert.equal(body.id, id);
    assert.deepEqual(body.result?.content, [{ type: 'text', text: 'Echo: ok' }]);
    assert.ok(upstream.received.some((r) => forwards(r.body, id)));
  });

  it('refuses a request whose Mcp-Method disagrees with the body method, before the upstream', async () => {
    const id = 'mismatch-method-1';
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...MODERN_HEADERS, 'mcp-method': 'tools/call' },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list', params: { _meta: ENVELOPE } }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { jsonrpc: string; id: unknown; error?: { code: number } };
    assert.equal(body.jsonrpc, '2.0');
    assert.equal(body.id, id);
    assert.equal(body.error?.code, -32020);
    // A 2.x upstream would answer the same itself: what shows the gateway judged it is that the
    // request never got there.
    assert.ok(
      !upstream.received.some((r) => forwards(r.body, id)),
      'the upstream received the mismatched request',
    );
  });

  it('refuses a tools/call whose Mcp-Name disagrees with params.name, before the upstream', async () => {
    const id = 'mismatch-name-1';
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...MODERN_HEADERS, 'mcp-method': 'tools/call', 'mcp-name': 'echo' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name: 'add', arguments: { a: 1, b: 2 }, _meta: ENVELOPE },
      }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { jsonrpc: string; id: unknown; error?: { code: number } };
    assert.equal(body.jsonrpc, '2.0');
    assert.equal(body.id, id);
    assert.equal(body.error?.code, -32020);
    assert.ok(
      !upstream.received.some((r) => forwards(r.body, id)),
      'the upstream received the mismatched request',
    );
  });

  it('refuses an Mcp-Param header whose value no argument has, on a batch, or repeated, before the upstream', async () => {
    // The attack: a component behind the gateway that routes on Mcp-Param-Message would read
    // "admin" while the tool runs with the body's argument.
    const post = async (headers: string[], body: unknown) => {
      const res = await rawHttp(gateway.mcpUrl, 'POST', [...rawModern, ...headers], JSON.stringify(body));
      return { status: res.status, body: JSON.parse(res.body) as { id: unknown; error?: { code: number } } };
    };
    const rawModern = Object.entries(MODERN_HEADERS).flat();
    const named = ['mcp-method', 'tools/call', 'mcp-name', 'echo'];
    const call = (id: string, message: string) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: { name: 'echo', arguments: { message }, _meta: ENVELOPE },
    });
    const cases: [string, string[], unknown][] = [
      ['param-mismatch-1', [...named, 'mcp-param-message', 'admin'], call('param-mismatch-1', 'ok')],
      [
        'param-repeated-1',
        ['mcp-param-message', 'ok', 'mcp-param-message', 'admin'],
        call('param-repeated-1', 'ok'),
      ],
      ['param-malformed-1', ['mcp-param-message', '=?base64?%%%?='], call('param-malformed-1', 'ok')],
      [
        'param-list-1',
        ['mcp-param-message', 'ok'],
        { jsonrpc: '2.0', id: 'param-list-1', method: 'tools/list', params: { _meta: ENVELOPE } },
      ],
    ];
    for (const [id, headers, body] of cases) {
      const res = await post(headers, body);
      assert.equal(res.status, 400, id);
      assert.equal(res.body.id, id);
      assert.equal(res.body.error?.code, -32020, id);
      assert.ok(!upstream.received.some((r) => forwards(r.body, id)), `the upstream received ${id}`);
    }
    const batch = await post(['mcp-param-message', 'ok'], [call('param-batch-1', 'ok')]);
    assert.equal(batch.status, 400);
    assert.deepEqual(
      (batch.body as unknown as { id: unknown; error?: { code: number } }[]).map((e) => [
        e.id,
        e.error?.code,
      ]),
      [['param-batch-1', -32020]],
    );
    assert.ok(!upstream.received.some((r) => forwards(r.body, 'param-batch-1')));
    // The control: the argument mirrored as the client must mirror it is forwarded.
    const agreed = await post([...named, 'mcp-param-message', 'ok'], call('param-agree-1', 'ok'));
    assert.equal(agreed.status, 200);
    assert.ok(upstream.received.some((r) => forwards(r.body, 'param-agree-1')));
  });
});

describe('2.x client through the gateway to a v1 SDK upstream', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(open(upstream.url));
  });
  after(async () => {
    await gateway.close(1000);
    await upstream.close();
  });

  it('falls back from the server/discover probe to 2025-era initialize, as it does directly', async () => {
    const mark = upstream.received.length;
    const direct = await connect(upstream.url, 'auto');
    const via = await connect(gateway.mcpUrl, 'auto');
    try {
      assert.equal(via.getNegotiatedProtocolVersion(), LEGACY);
      assert.equal(direct.getNegotiatedProtocolVersion(), LEGACY);
      assert.equal(via.getProtocolEra(), 'legacy');
      assert.equal(via.getServerVersion()?.name, 'test-upstream');
      assert.deepEqual(await via.listTools(), await direct.listTools());
      const echo = { name: 'echo', arguments: { message: 'héllo ✓' } };
      assert.deepEqual(await via.callTool(echo), await direct.callTool(echo));
      assert.deepEqual(await via.listPrompts(), await direct.listPrompts());
      assert.deepEqual(await via.listResources(), await direct.listResources());
    } finally {
      await direct.close();
      await via.close();
    }
    const methods = upstream.received
      .slice(mark)
      .filter((r) => r.method === 'POST')
      .map((r) => (JSON.parse(r.body) as { method?: string }).method);
    // Both connections probed first, then initialized.
    assert.equal(methods.filter((m) => m === 'server/discover').length, 2);
    assert.equal(methods.filter((m) => m === 'initialize').length, 2);
  });

  it('fails a pinned 2026-07-28 connection the same way through the gateway as directly', async () => {
    const attempt = async (url: string) => {
      const client = new Client(
        { name: 'e2e-v2', version: '1.0.0' },
        { versionNegotiation: { mode: { pin: MODERN } } },
      );
      try {
        await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      } catch (err) {
        return (err as { code?: unknown }).code;
      } finally {
        await client.close();
      }
      return 'connected';
    };
    const direct = await attempt(upstream.url);
    assert.equal(direct, 'ERA_NEGOTIATION_FAILED');
    assert.equal(await attempt(gateway.mcpUrl), direct);
  });
});

describe('methods 2026-07-28 removed, through the gateway with a key that may use little', () => {
  let upstream: V2Upstream;
  let gateway: TestGateway;
  const key = mintKey(randomBytes(32));
  before(async () => {
    upstream = await startV2Upstream();
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${upstream.url}
auth:
  session_secret: "${'m'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(key)}"
    allow: [echo]
`);
  });
  after(async () => {
    await gateway.close(1000);
    await upstream.close();
  });

  it('are answered as a 2026-07-28 upstream answers them (404, -32601), never by the key\u2019s allowlist', async () => {
    const removed: [string, Record<string, unknown>][] = [
      [
        'initialize',
        { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      ],
      ['ping', {}],
      ['logging/setLevel', { level: 'info' }],
      ['resources/subscribe', { uri: V2_RESOURCE_URI }],
      ['resources/unsubscribe', { uri: V2_RESOURCE_URI }],
      ['tasks/result', { taskId: 'task-1' }],
    ];
    const mark = upstream.received.length;
    for (const [method, params] of removed) {
      const send = async (url: string, headers: Record<string, string>) => {
        const res = await fetch(url, {
          method: 'POST',
          headers: { ...MODERN_HEADERS, 'mcp-method': method, ...headers },
          body: JSON.stringify({ jsonrpc: '2.0', id: 41, method, params: { ...params, _meta: ENVELOPE } }),
        });
        return { status: res.status, body: (await res.json()) as unknown };
      };
      const direct = await send(upstream.url, {});
      assert.equal(direct.status, 404, method);
      const via = await send(gateway.mcpUrl, { authorization: `Bearer ${key}` });
      assert.deepEqual(via, direct, method);
    }
    // The gateway answered them itself.
    assert.equal(upstream.received.length - mark, removed.length);
  });
});
