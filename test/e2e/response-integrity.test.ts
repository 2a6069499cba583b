/**
 * Named security regressions for the response direction (issue: judge the whole HTTP exchange):
 * the upstream's response headers pass an allowlist; redirects, refused gateway credentials and
 * compressed bodies get 502; a response is passed on only when it answers a request the gateway
 * forwarded in that exchange (JSON, SSE, batches, resumed GET streams); and a client's cancellation
 * reaches the request the upstream knows, under the gateway's id for it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from '@modelcontextprotocol/client';
import { sealerFor } from '../helpers/event-ids.ts';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import type { Logger } from '../../src/log/types.ts';
import { UNREADABLE } from '../../src/policy/unreadable.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { waitFor } from '../helpers/net.ts';
import { forwardedIds } from '../helpers/tags.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream, Seen } from '../helpers/scripted-upstream.ts';

const KEY = mintKey(randomBytes(32));
/** The event ids the client sees: the upstream's, sealed for KEY (the config's session secret). */
const seal = sealerFor('r'.repeat(40), KEY);
const UPSTREAM_TOKEN = 'upstream-credential-0123456789';
const LIST = { tools: [{ name: 'secret_admin' }, { name: 'echo' }] };

function config(url: string, allow: string[] = ['echo']): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${url}
  headers:
    Authorization: "Bearer ${UPSTREAM_TOKEN}"
  pass_headers: [X-Trace-Id]
auth:
  session_secret: "${'r'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ${JSON.stringify(allow)}
`;
}

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  authorization: `Bearer ${KEY}`,
};

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...HEADERS, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const idOf = (seen: Seen) => (seen.body as { id: unknown }).id;
const sse = (events: unknown[]) => events.map((e, i) => `id: e${i}\ndata: ${JSON.stringify(e)}\n\n`).join('');

/** A logger that keeps warnings (the gateway's operational log). */
function capturingLog(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const noop = () => {};
  const log: Logger = {
    trace: noop,
    debug: noop,
    info: noop,
    warn: (obj, msg) => void warnings.push(`${JSON.stringify(obj)} ${msg ?? ''}`),
    error: noop,
    fatal: noop,
  };
  return { log, warnings };
}

describe('upstream response heads', () => {
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  const { log, warnings } = capturingLog();
  before(async () => {
    upstream = await startScriptedUpstream();
    gateway = await startTestGateway(config(upstream.url), {}, { log });
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('the upstream\u2019s Location, WWW-Authenticate, Set-Cookie, Server, X-Powered-By and CORS headers never reach the client', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        location: 'http://10.1.2.3:9000/internal/mcp',
        'www-authenticate': 'Bearer realm="internal-upstream"',
        'set-cookie': 'upstream_session=abc; Path=/',
        server: 'internal-mcp/1.2.3',
        'x-powered-by': 'Express',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'x-internal-debug': 'db=primary-3',
        'retry-after': '30',
        'cache-control': 'private, max-age=5',
        'x-trace-id': 'trace-1',
      });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: idOf(seen), result: {} }));
    });
    const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'ping' });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.text), { jsonrpc: '2.0', id: 1, result: {} });
    for (const name of [
      'location',
      'www-authenticate',
      'set-cookie',
      'server',
      'x-powered-by',
      'access-control-allow-origin',
      'access-control-allow-credentials',
      'x-internal-debug',
      'retry-after',
    ]) {
      assert.equal(answer.headers.get(name), null, name);
    }
    // The allowlist: Content-Type, Cache-Control, and what upstream.pass_headers names.
    assert.equal(answer.headers.get('content-type'), 'application/json');
    assert.equal(answer.headers.get('cache-control'), 'private, max-age=5');
    assert.equal(answer.headers.get('x-trace-id'), 'trace-1');
  });

  it('Retry-After passes with 429 and 503 only', async () => {
    for (const status of [429, 503]) {
      upstream.set((_seen, res) => {
        res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '7' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'busy' } }));
      });
      const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 2, method: 'ping' });
      assert.equal(answer.status, status);
      assert.equal(answer.headers.get('retry-after'), '7');
    }
  });

  it('an upstream redirect is a 502 protocol error; its Location is not passed', async () => {
    for (const status of [301, 302, 307, 308]) {
      upstream.set(
        (_seen, res) => void res.writeHead(status, { location: 'http://10.1.2.3/elsewhere' }).end(),
      );
      const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 'r1', method: 'ping' });
      assert.equal(answer.status, 502, String(status));
      assert.equal(answer.headers.get('location'), null);
      assert.deepEqual(JSON.parse(answer.text), {
        jsonrpc: '2.0',
        id: 'r1',
        error: { code: -32002, message: 'upstream sent a redirect' },
      });
    }
  });

  it('an upstream 401/403 is a 502 for the client and one rate-limited warning for the operator', async () => {
    const before = warnings.length;
    for (const status of [401, 403, 401]) {
      upstream.set((_seen, res) => {
        res.writeHead(status, {
          'www-authenticate': 'Bearer realm="internal-upstream"',
          'content-type': 'application/json',
        });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'no' } }));
      });
      const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 'a1', method: 'ping' });
      assert.equal(answer.status, 502);
      assert.equal(answer.headers.get('www-authenticate'), null);
      assert.deepEqual(JSON.parse(answer.text), {
        jsonrpc: '2.0',
        id: 'a1',
        error: { code: -32002, message: "upstream refused the gateway's credentials" },
      });
    }
    const logged = warnings.slice(before);
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(logged[0] as string, /refused the gateway's own credentials \(upstream\.headers\)/);
    assert.ok(!logged[0]!.includes(UPSTREAM_TOKEN), 'the warning never carries the credential');
    const lines = gateway.auditLines.slice(-3);
    assert.ok(lines.every((l) => l.decision === 'upstream_error' && l.reason === 'ERR_UPSTREAM_AUTH'));
  });

  it('a compressed list response is refused with 502, never passed on unread (JSON and SSE)', async () => {
    for (const type of ['application/json', 'text/event-stream']) {
      upstream.set((seen, res) => {
        const message = { jsonrpc: '2.0', id: idOf(seen), result: LIST };
        const text = type === 'application/json' ? JSON.stringify(message) : sse([message]);
        res.writeHead(200, { 'content-type': type, 'content-encoding': 'gzip' });
        res.end(gzipSync(text));
      });
      const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 'z1', method: 'tools/list' });
      assert.equal(answer.status, 502, type);
      assert.equal(answer.headers.get('content-encoding'), null);
      assert.deepEqual(JSON.parse(answer.text), {
        jsonrpc: '2.0',
        id: 'z1',
        error: { code: -32002, message: 'upstream sent a compressed body' },
      });
    }
    // The gateway asked for identity.
    assert.equal(upstream.seen.at(-1)?.headers['accept-encoding'], 'identity');
  });
});

describe('responses are matched to the requests the gateway forwarded', () => {
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

  it('an id-mismatched list response is refused (JSON)', async () => {
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 'not-forwarded', result: LIST }));
    });
    const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(answer.status, 502);
    assert.ok(!answer.text.includes('secret_admin'), answer.text);
    assert.equal((JSON.parse(answer.text) as { id: unknown }).id, 1);
  });

  it('an id-mismatched list response is refused (SSE): the event becomes an error', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        sse([
          { jsonrpc: '2.0', id: 'not-forwarded', result: LIST },
          { jsonrpc: '2.0', id: idOf(seen), result: { tools: [] } },
        ]),
      );
    });
    const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(answer.status, 200);
    assert.ok(!answer.text.includes('secret_admin'), answer.text);
    assert.equal(
      answer.text,
      `id: ${seal('e0')}\ndata: ${UNREADABLE}\n\nid: ${seal('e1')}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [] } })}\n\n`,
    );
  });

  it('an id-mismatched list response in a batch refuses the batch', async () => {
    upstream.set((seen, res) => {
      const [, ping] = seen.body as { id: string }[];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify([
          { jsonrpc: '2.0', id: ping!.id, result: {} },
          { jsonrpc: '2.0', id: 3, result: LIST },
        ]),
      );
    });
    const answer = await post(gateway.mcpUrl, [
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'ping' },
    ]);
    assert.equal(answer.status, 502);
    assert.ok(!answer.text.includes('secret_admin'), answer.text);
  });

  it('a response to a request never forwarded is refused', async () => {
    // A POST of a notification only: the upstream should answer 202; it answers with a list.
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: LIST }));
    });
    const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.equal(answer.status, 502);
    assert.ok(!answer.text.includes('secret_admin'), answer.text);
  });

  it('the upstream sees the gateway\u2019s ids, the client its own', async () => {
    upstream.set((seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: idOf(seen), result: { tools: [{ name: 'echo' }] } }));
    });
    const answer = await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 'mine-1', method: 'tools/list' });
    assert.deepEqual(JSON.parse(answer.text), {
      jsonrpc: '2.0',
      id: 'mine-1',
      result: { tools: [{ name: 'echo' }] },
    });
    const sent = idOf(upstream.seen.at(-1)!);
    assert.notEqual(sent, 'mine-1');
    assert.ok(!JSON.stringify(JSON.parse(answer.text)).includes(String(sent)));
  });

  it('escaped keys on a resumed GET stream are judged: a replayed list is filtered by its signed plan', async () => {
    // The POST stream is cut after its priming event (the list would follow).
    let tag = '';
    upstream.set((seen, res) => {
      tag = idOf(seen) as string;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('id: p0\ndata: \n\n');
    });
    await post(gateway.mcpUrl, { jsonrpc: '2.0', id: 'list-9', method: 'tools/list' });
    // The resuming GET replays the list with the key names written as escapes.
    const replayed = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"res\\u0075lt":{"t\\u006fols":${JSON.stringify(LIST.tools)}}}`;
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`id: p1\ndata: ${replayed}\n\n`);
    });
    const res = await fetch(gateway.mcpUrl, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${KEY}`, 'last-event-id': seal('p0') },
    });
    const text = await res.text();
    assert.ok(!text.includes('secret_admin'), text);
    assert.equal(
      text,
      `id: ${seal('p1')}\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 'list-9', result: { tools: [{ name: 'echo' }] } })}\n\n`,
    );
  });
});

describe('cancellation names the request the upstream knows', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(config(upstream.url, ['echo', 'slow']));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  const auth = { requestInit: { headers: { authorization: `Bearer ${KEY}` } } };

  it('an SDK v1 client cancelling a slow call aborts it upstream', async () => {
    const client = new Client({ name: 'cancel-v1', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), auth));
    try {
      const controller = new AbortController();
      const call = client.callTool({ name: 'slow', arguments: { ms: 20_000, label: 'v1' } }, undefined, {
        signal: controller.signal,
      });
      await waitFor(() => upstream.toolCalls().includes('slow') || undefined, 5000, 'the call upstream');
      controller.abort('user cancelled');
      await assert.rejects(call);
      await waitFor(
        () => upstream.cancelled.includes('v1') || undefined,
        5000,
        'the upstream to cancel the call',
      );
      // What the upstream got: the cancellation names the gateway's id for the call, not the client's.
      const cancel = upstream.received
        .map((r) =>
          r.body ? (JSON.parse(r.body) as { method?: string; params?: { requestId?: unknown } }) : {},
        )
        .find((m) => m.method === 'notifications/cancelled');
      const call0 = upstream.received.find((r) => r.body.includes('"label":"v1"'))!;
      assert.equal(cancel?.params?.requestId, (JSON.parse(call0.body) as { id: unknown }).id);
      assert.equal(typeof cancel?.params?.requestId, 'string');
      assert.notEqual(forwardedIds(call0.body)[0], cancel?.params?.requestId);
    } finally {
      await client.close();
    }
  });

  it('an SDK v2 client cancelling a slow call aborts it upstream', async () => {
    const client = new ClientV2({ name: 'cancel-v2', version: '1.0.0' });
    await client.connect(new TransportV2(new URL(gateway.mcpUrl), auth));
    try {
      const controller = new AbortController();
      const call = client.callTool(
        { name: 'slow', arguments: { ms: 20_000, label: 'v2' } },
        { signal: controller.signal },
      );
      await waitFor(
        () => upstream.received.some((r) => r.body.includes('"label":"v2"')) || undefined,
        5000,
        'the call upstream',
      );
      controller.abort('user cancelled');
      await assert.rejects(call);
      await waitFor(
        () => upstream.cancelled.includes('v2') || undefined,
        5000,
        'the upstream to cancel the call',
      );
    } finally {
      await client.close();
    }
  });
});

describe('/metrics never reveals a name a key cannot see', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  const everything = mintKey(randomBytes(32));
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(
      `${config(upstream.url, ['echo'])}  - label: every-tool\n    hash: "sha256:${sha256Hex(everything)}"\n    allow: ["*"]\n`,
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('tool labels are the exact names in the config; listed and called names are `other`', async () => {
    const client = new Client({ name: 'metrics', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${everything}` } },
      }),
    );
    try {
      const listed = await client.listTools();
      assert.ok(
        listed.tools.some((t) => t.name === 'secret_admin'),
        'this key may see every tool',
      );
      await client.callTool({ name: 'secret_admin', arguments: {} });
      await client.callTool({ name: 'echo', arguments: { message: 'x' } });
    } finally {
      await client.close();
    }
    const scrape = await (await fetch(`${gateway.url}/metrics`)).text();
    const tools = [...scrape.matchAll(/^mcpgate_tool_calls_total\{[^}]*tool="([^"]*)"/gm)].map((m) => m[1]);
    assert.ok(tools.includes('echo') && tools.includes('other'), scrape);
    assert.ok(!scrape.includes('secret_admin'), 'a scraper learns no name from the upstream\u2019s lists');
  });
});
