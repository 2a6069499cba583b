/**
 * Issue 11: DNS rebinding and CORS, end to end. A page on a foreign name that rebinds to the
 * gateway's loopback address sends that name as `Host` (and its own `Origin`); the gateway must
 * refuse both before authentication, with keys and with `auth.allow_unauthenticated`, while a local
 * client and an allowed browser origin keep working. CORS is the gateway's own: preflight answered
 * by it, headers on every answer (errors included), the upstream's Access-Control-* never passed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as TransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from '@modelcontextprotocol/client';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const KEY = mintKey(randomBytes(32));
const ONE = mintKey(randomBytes(32));
const APP = 'https://app.example.com';
const PUBLIC = 'https://mcp.example.com';

const keyed = (upstreamUrl: string) => `
listen: 127.0.0.1:0
public_url: ${PUBLIC}/mcp
cors:
  allowed_origins: ["${APP}"]
upstream:
  url: ${upstreamUrl}
keys:
  - label: all
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["*"]
  - label: one
    hash: "sha256:${sha256Hex(ONE)}"
    allow: ["*"]
    rate_limit: { capacity: 1, refill_per_second: 0.001 }
`;

const open = (upstreamUrl: string) => `
listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
auth:
  allow_unauthenticated: true
`;

const INIT = (id: number) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'site', version: '1' } },
  });
const PING = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request with exactly these headers (Host included: node adds none of its own). */
function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method,
        setHost: false,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    for (const [name, value] of Object.entries({ Host: target.host, ...headers })) req.setHeader(name, value);
    req.on('error', reject);
    // A stream the gateway should have refused must not hang the test.
    req.setTimeout(5000, () => req.destroy(new Error(`no complete answer to ${method} within 5 s`)));
    req.end(body);
  });
}

const post = (gateway: TestGateway, headers: Record<string, string>, body = INIT(7)) =>
  send(
    gateway.mcpUrl,
    'POST',
    { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
    body,
  );

function auditLine(gateway: TestGateway, answer: Answer): Promise<Record<string, unknown>> {
  const id = answer.headers['x-request-id'];
  return waitFor(() => gateway.auditLines.find((l) => l.request_id === id), 2000, 'the audit line');
}

function assertRefused(answer: Answer, code: string, id: unknown): void {
  assert.equal(answer.status, 403, answer.body);
  assert.equal(answer.headers['content-type'], 'application/json');
  const body = JSON.parse(answer.body) as { id: unknown; error: { code: number; message: string } };
  assert.equal(body.id, id);
  assert.equal(body.error.code, -32600);
  assert.equal(body.error.message, code === 'ERR_HOST_DENIED' ? 'host not allowed' : 'origin not allowed');
}

describe('DNS rebinding: Host and Origin are checked before authentication', () => {
  let upstream: SdkUpstream;
  let withKeys: TestGateway;
  let unauthenticated: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    withKeys = await startTestGateway(keyed(upstream.url));
    unauthenticated = await startTestGateway(open(upstream.url));
  });
  after(async () => {
    await withKeys.close(1000);
    await unauthenticated.close(1000);
    await upstream.close();
  });

  const cases = () =>
    [
      ['with keys', withKeys, { Authorization: `Bearer ${KEY}` }],
      ['with allow_unauthenticated', unauthenticated, {}],
    ] as const;

  it('foreign Host: a rebound name is refused with 403 and an audit line; loopback names are served', async () => {
    for (const [what, gateway, auth] of cases()) {
      const port = new URL(gateway.url).port;
      const before = upstream.received.length;
      for (const host of [
        `rebind.attacker.example:${port}`,
        'rebind.attacker.example',
        `127.0.0.1.nip.io:${port}`,
      ]) {
        const res = await post(gateway, { Host: host, ...auth });
        assertRefused(res, 'ERR_HOST_DENIED', 7);
        const line = await auditLine(gateway, res);
        assert.equal(line.status, 403, what);
        assert.equal(line.reason, 'ERR_HOST_DENIED', what);
        assert.equal(line.decision, 'deny', what);
      }
      // A GET stream too (no body: the id is null).
      const get = await send(gateway.mcpUrl, 'GET', {
        Host: 'rebind.attacker.example',
        Accept: 'text/event-stream',
        ...auth,
      });
      assertRefused(get, 'ERR_HOST_DENIED', null);
      // Refused before authentication: no key at all still gets 403, not 401.
      const anonymous = await post(gateway, { Host: 'rebind.attacker.example' });
      assert.equal(anonymous.status, 403, what);
      assert.equal(upstream.received.length, before, `${what}: nothing reached the upstream`);

      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LOCALHOST:1']) {
        const res = await post(gateway, { Host: host, ...auth }, INIT(8));
        assert.equal(res.status, 200, `${what}: ${host} is served`);
      }
    }
  });

  it('foreign Host on /metrics: a rebound page cannot read metrics; health probes answer any Host', async () => {
    for (const [what, gateway] of cases()) {
      const metricsUrl = `${gateway.url}/metrics`;
      const refused = await send(metricsUrl, 'GET', { Host: 'rebind.attacker.example' });
      assert.equal(refused.status, 403, what);
      assert.equal(
        (JSON.parse(refused.body) as { error: { message: string } }).error.message,
        'host not allowed',
      );
      assert.doesNotMatch(refused.body, /mcpgate_/);
      const local = await send(metricsUrl, 'GET', { Host: `localhost:${new URL(gateway.url).port}` });
      assert.equal(local.status, 200, what);
      assert.match(local.body, /mcpgate_/);
      const probe = await send(`${gateway.url}/healthz`, 'GET', { Host: '10.0.0.7:8080' });
      assert.equal(probe.status, 200, what);
    }
  });

  it('serves the host of public_url', async () => {
    const res = await post(withKeys, { Host: 'mcp.example.com', Authorization: `Bearer ${KEY}` });
    assert.equal(res.status, 200, res.body);
  });

  it('foreign Origin: a page on another origin is refused with 403 and an audit line, before authentication', async () => {
    for (const [what, gateway, auth] of cases()) {
      const before = upstream.received.length;
      for (const origin of ['https://attacker.example', 'null', `http://${new URL(gateway.url).host}`]) {
        const res = await post(gateway, { Origin: origin, ...auth });
        assertRefused(res, 'ERR_ORIGIN_DENIED', 7);
        assert.equal(res.headers['access-control-allow-origin'], undefined);
        const line = await auditLine(gateway, res);
        assert.equal(line.reason, 'ERR_ORIGIN_DENIED', what);
        assert.equal(line.status, 403, what);
      }
      const anonymous = await post(gateway, { Origin: 'https://attacker.example' });
      assert.equal(anonymous.status, 403, what);
      assert.equal(upstream.received.length, before, `${what}: nothing reached the upstream`);
    }
  });

  it('serves an allowed browser origin and the origin of public_url', async () => {
    const fromApp = await post(withKeys, { Origin: APP, Authorization: `Bearer ${KEY}` });
    assert.equal(fromApp.status, 200, fromApp.body);
    assert.equal(fromApp.headers['access-control-allow-origin'], APP);
    const sameOrigin = await post(withKeys, { Origin: PUBLIC, Authorization: `Bearer ${KEY}` });
    assert.equal(sameOrigin.status, 200, sameOrigin.body);
  });
});

describe('CORS: the gateway’s own headers, on every answer to an allowed origin', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  let corsUpstream: Server;
  let leaky: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ jsonResponse: true });
    gateway = await startTestGateway(keyed(upstream.url));
    // An upstream that sends CORS headers of its own.
    corsUpstream = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        // Answers with the id it was sent (the gateway's own), as an upstream does.
        res.writeHead(200, {
          'content-type': 'application/json',
          'access-control-allow-origin': '*',
          'access-control-allow-credentials': 'true',
          'access-control-expose-headers': 'X-Upstream-Secret',
        });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: (JSON.parse(body) as { id: unknown }).id, result: {} }));
      });
    });
    await new Promise<void>((resolve) => corsUpstream.listen(0, '127.0.0.1', resolve));
    const { port } = corsUpstream.address() as AddressInfo;
    leaky = await startTestGateway(
      open(`http://127.0.0.1:${port}/mcp`).replace(
        'listen:',
        `cors:\n  allowed_origins: ["${APP}"]\nlisten:`,
      ),
    );
  });
  after(async () => {
    await gateway.close(1000);
    await leaky.close(1000);
    await upstream.close();
    await new Promise<void>((resolve) => corsUpstream.close(() => resolve()));
  });

  it('answers the preflight itself, and never forwards it', async () => {
    const before = upstream.received.length;
    const res = await send(gateway.mcpUrl, 'OPTIONS', {
      Origin: APP,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'authorization, content-type, mcp-protocol-version, mcp-param-region',
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-methods'], 'GET, POST, DELETE');
    const allowed = String(res.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/);
    for (const name of [
      'authorization',
      'x-api-key',
      'content-type',
      'mcp-protocol-version',
      'mcp-session-id',
      'last-event-id',
      'mcp-method',
      'mcp-name',
      'mcp-param-region',
    ])
      assert.ok(allowed.includes(name), name);
    assert.equal(res.headers['access-control-max-age'], '600');
    assert.match(String(res.headers.vary), /Origin/);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
    assert.equal(upstream.received.length, before);
    const line = await auditLine(gateway, res);
    assert.equal(line.status, 204);

    const foreign = await send(gateway.mcpUrl, 'OPTIONS', {
      Origin: 'https://attacker.example',
      'Access-Control-Request-Method': 'POST',
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers['access-control-allow-origin'], undefined);
    const noOrigin = await send(gateway.mcpUrl, 'OPTIONS', {});
    assert.equal(noOrigin.status, 405);
  });

  it('puts Access-Control-Allow-Origin, Vary and the exposed headers on successes and on errors (401, 415, 429)', async () => {
    const expectCors = (res: Answer, what: string) => {
      assert.equal(res.headers['access-control-allow-origin'], APP, what);
      assert.match(String(res.headers.vary), /\bOrigin\b/, what);
      const exposed = String(res.headers['access-control-expose-headers']).toLowerCase();
      for (const name of [
        'mcp-session-id',
        'www-authenticate',
        'ratelimit',
        'ratelimit-policy',
        'retry-after',
      ])
        assert.ok(exposed.split(/,\s*/).includes(name), `${what}: ${name} exposed`);
    };
    const ok = await post(gateway, { Origin: APP, Authorization: `Bearer ${KEY}` });
    assert.equal(ok.status, 200);
    assert.ok(ok.headers['mcp-session-id']);
    expectCors(ok, '200');
    const unauthorized = await post(gateway, { Origin: APP });
    assert.equal(unauthorized.status, 401);
    assert.ok(unauthorized.headers['www-authenticate']);
    expectCors(unauthorized, '401');
    const charset = await post(gateway, {
      Origin: APP,
      Authorization: `Bearer ${KEY}`,
      'Content-Type': 'application/json; charset=utf-7',
    });
    assert.equal(charset.status, 415);
    expectCors(charset, '415');
    assert.equal((await post(gateway, { Origin: APP, Authorization: `Bearer ${ONE}` }, INIT(1))).status, 200);
    const limited = await post(gateway, { Origin: APP, Authorization: `Bearer ${ONE}` }, INIT(2));
    assert.equal(limited.status, 429);
    expectCors(limited, '429');
    // Without an Origin (not a browser): no CORS headers at all.
    const plain = await post(gateway, { Authorization: `Bearer ${KEY}` });
    assert.equal(plain.headers['access-control-allow-origin'], undefined);
  });

  it('serves both SDK clients sending an allowed Origin (as a browser page would), with CORS on every answer', async () => {
    const seen: (string | null)[] = [];
    const watch = async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init);
      seen.push(res.headers.get('access-control-allow-origin'));
      return res;
    };
    const headers = { Origin: APP, Authorization: `Bearer ${KEY}` };
    const v1 = new ClientV1({ name: 'site-v1', version: '1.0.0' });
    await v1.connect(new TransportV1(new URL(gateway.mcpUrl), { requestInit: { headers }, fetch: watch }));
    const v2 = new ClientV2({ name: 'site-v2', version: '1.0.0' });
    await v2.connect(new TransportV2(new URL(gateway.mcpUrl), { requestInit: { headers }, fetch: watch }));
    try {
      for (const client of [v1, v2]) {
        const { tools } = await client.listTools();
        assert.ok(tools.some((t) => t.name === 'echo'));
        const result = await client.callTool({ name: 'echo', arguments: { message: 'from a page' } });
        assert.deepEqual(result.content, [{ type: 'text', text: 'Echo: from a page' }]);
      }
    } finally {
      await v1.close();
      await v2.close();
    }
    assert.ok(seen.length >= 6);
    assert.deepEqual(new Set(seen), new Set([APP]));
  });

  it('never passes the upstream’s own Access-Control-* headers', async () => {
    const fromApp = await post(leaky, { Origin: APP }, PING(9));
    assert.equal(fromApp.status, 200);
    assert.equal(fromApp.headers['access-control-allow-origin'], APP);
    assert.equal(fromApp.headers['access-control-allow-credentials'], undefined);
    assert.doesNotMatch(String(fromApp.headers['access-control-expose-headers']), /X-Upstream-Secret/i);
    const noOrigin = await post(leaky, {}, PING(9));
    assert.equal(noOrigin.status, 200);
    for (const name of Object.keys(noOrigin.headers)) assert.ok(!name.startsWith('access-control-'), name);
  });
});
