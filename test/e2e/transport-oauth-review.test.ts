/**
 * Attack review of a4d9f6a's day (prepay, unread parts, escaped keys, alias spellings, audit
 * redaction, MCP-Protocol-Version, Expect: 100-continue) where it meets the older HTTP+SSE transport
 * (`upstream.transport: sse`) and OAuth bearer tokens. Each `defect:` test asserts the promised
 * behaviour and fails on a4d9f6a; each `held:` test is a guard that passed. No timing asserts:
 * statuses, what a raw socket got, audit lines and what the upstream received.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, rawExchange, waitFor } from '../helpers/net.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { openStream } from '../helpers/sse-stream.ts';
import { REDACTED } from '../../src/auth/user-agent.ts';
import { compileLimits } from '../../src/ratelimit/policy.ts';
import { createMemoryStore } from '../../src/ratelimit/memory.ts';
import { createStreamCounter } from '../../src/ratelimit/streams.ts';
import { createRateLimit } from '../../src/pipeline/rate-limit.ts';
import type { RequestContext } from '../../src/pipeline/context.ts';
import type { RateLimitStore } from '../../src/ratelimit/store.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';

const JSON_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};

function sseOAuthConfig(port: number, upstreamUrl: string, as: TestAuthServer, extra: string[] = []) {
  return [
    `listen: 127.0.0.1:${port}`,
    `public_url: http://127.0.0.1:${port}/legacy/sse`,
    'upstream:',
    `  url: ${upstreamUrl}`,
    '  transport: sse',
    'streams:',
    '  keepalive: 150ms',
    'auth:',
    '  session_secret: "0123456789abcdef0123456789abcdef-oauth"',
    '  oauth:',
    `    issuer: ${as.issuer}`,
    `    jwks_uri: ${as.jwksUri}`,
    '    required_scopes: [mcp:use]',
    '    grants:',
    '      - name: small',
    '        when: { scope: mcp:tools }',
    '        allow: [echo]',
    '        rate_limit: { capacity: 6, refill_per_second: 0.001 }',
    ...extra,
  ].join('\n');
}

describe('HTTP+SSE transport behind OAuth', () => {
  let as: TestAuthServer;
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let mcpUrl: string;
  const streams: OpenedStream[] = [];

  before(async () => {
    as = await startAuthServer();
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S1');
    const port = await freePort();
    gateway = await startTestGateway(
      sseOAuthConfig(port, upstream.url, as),
      {},
      { listen: `127.0.0.1:${port}` },
    );
    mcpUrl = gateway.mcpUrl;
  });
  after(async () => {
    for (const s of streams) s.close();
    await gateway.close(200);
    await upstream.close();
    await as.close();
  });

  const token = (sub: string, scope = 'mcp:use mcp:tools', extra: Record<string, unknown> = {}) =>
    as.sign({ aud: mcpUrl, sub, scope, ...extra });

  async function open(bearer: string): Promise<{ stream: OpenedStream; endpoint: string }> {
    const stream = await openStream(mcpUrl, bearer);
    streams.push(stream);
    assert.equal(stream.status, 200);
    const first = await stream.next();
    assert.equal(first.event, 'endpoint');
    return { stream, endpoint: new URL(first.data, gateway.url).href };
  }

  const postTo = async (url: string, bearer: string, body: string, headers: Record<string, string> = {}) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${bearer}`, ...headers },
      body,
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };

  /** A 2024-11-05 tools/call with `params` spelled as given (raw JSON text). */
  const rawCall = (id: number | string, paramsText: string) =>
    `{"jsonrpc":"2.0","id":${typeof id === 'number' ? id : JSON.stringify(id)},"method":"tools/call","params":${paramsText}}`;
  const ping = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });
  const settle = () => new Promise((r) => setTimeout(r, 100));

  it('held: escaped keys reach the upstream plainly, in judged members and in an unread _meta part, through the session endpoint', async () => {
    const t = await token('esc');
    const { endpoint } = await open(t);
    const n = upstream.posts.length;
    const body = rawCall(1, '{"n\\u0061me":"echo","arguments":{"a":1},"_meta":{"x.y/z":[{"q\\u0031":1}]}}');
    const r = await postTo(endpoint, t, body);
    assert.equal(r.status, 202);
    const sent = upstream.posts.slice(n);
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.path, '/legacy/messages?sid=S1');
    assert.match(
      sent[0]!.body,
      /"params":\{"name":"echo","arguments":\{"a":1\},"_meta":\{"x\.y\/z":\[\{"q1":1\}\]\}\}\}$/,
    );
    assert.ok(!sent[0]!.body.includes('\\u'), 'no key reaches the upstream spelled with an escape');
  });

  it('held: alias spellings (case twin, escaped case twin, snake_case, unprefixed meta) never reach the upstream endpoint', async () => {
    const t = await token('alias');
    const { stream, endpoint } = await open(t);
    const n = upstream.posts.length;
    const bodies = [
      rawCall(2, '{"name":"echo","Name":"secret","arguments":{}}'),
      rawCall(3, '{"name":"echo","N\\u0061ME":"secret","arguments":{}}'),
      '{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"task_id":"t-other"}}',
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"request_id":9}}',
      rawCall(
        5,
        '{"name":"echo","arguments":{},"meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}',
      ),
    ];
    const statuses: number[] = [];
    for (const b of bodies) statuses.push((await postTo(endpoint, t, b)).status);
    // The twins are refused while parsing, the others by the judge: every answer on the stream
    // (the POST gets 202), where the client waits for it.
    assert.deepEqual(statuses, [202, 202, 202, 202, 202]);
    await waitFor(() => stream.raw().includes('"id":5'), 2000, 'the answer to id 5 on the stream');
    for (const id of [2, 3, 4, 5]) assert.ok(stream.raw().includes(`"id":${id}`), `no answer to id ${id}`);
    assert.equal(
      upstream.posts.length,
      n,
      `forwarded: ${upstream.posts
        .slice(n)
        .map((p) => p.body)
        .join('\n')}`,
    );
  });

  it('held: the GET stream and each POST of an OAuth subject prepay once; a refreshed token draws on the same bucket', async () => {
    const t1 = await token('flood');
    const { endpoint } = await open(t1); // token 1 of 6
    const n = upstream.posts.length;
    const nStreams = upstream.streams.length;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await postTo(endpoint, t1, ping(i))).status); // 2..6
    statuses.push((await postTo(endpoint, t1, ping(9))).status);
    const t2 = await token('flood', 'mcp:use mcp:tools', { jti: 'refreshed' });
    assert.notEqual(t1, t2);
    statuses.push((await postTo(endpoint, t2, ping(10))).status);
    const g = await fetch(mcpUrl, {
      headers: { authorization: `Bearer ${t2}`, accept: 'text/event-stream' },
    });
    statuses.push(g.status);
    await g.body?.cancel();
    assert.deepEqual(statuses, [202, 202, 202, 202, 202, 429, 429, 429]);
    assert.equal(upstream.posts.length - n, 5);
    assert.equal(upstream.streams.length, nStreams);
  });

  it('held: a token without the required scope (403) gets no stream, no POST upstream, takes no token; its lines say who, no session', async () => {
    const good = await token('narrow');
    const { endpoint } = await open(good); // token 1 of 6
    const bad = await token('narrow', 'mcp:tools');
    const nPosts = upstream.posts.length;
    const nStreams = upstream.streams.length;
    const g = await fetch(mcpUrl, {
      headers: { authorization: `Bearer ${bad}`, accept: 'text/event-stream' },
    });
    assert.equal(g.status, 403);
    await g.text();
    for (let i = 0; i < 8; i++) assert.equal((await postTo(endpoint, bad, ping(i))).status, 403);
    assert.equal(upstream.streams.length, nStreams);
    assert.equal(upstream.posts.length, nPosts);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await postTo(endpoint, good, ping(i))).status);
    assert.deepEqual(statuses, [202, 202, 202, 202, 202, 429], "the 403s took none of the subject's tokens");
    const refused = gateway.auditLines.filter(
      (l) => l.sub === 'narrow' && l.reason === 'ERR_INSUFFICIENT_SCOPE',
    );
    assert.equal(refused.length, 9);
    for (const l of refused) {
      assert.equal(l.status, 403);
      assert.equal(l.session, undefined);
      assert.equal(l.grant, undefined);
    }
  });

  it('held: Expect: 100-continue on the session endpoint is invited only once paid; forged session, 403 and 429 answer uninvited', async () => {
    const t = await token('cont');
    const { endpoint } = await open(t); // token 1 of 6
    const u = new URL(endpoint);
    const body = ping(1);
    const head = (path: string, bearer: string) =>
      `POST ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${bearer}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const n = upstream.posts.length;
    const ok = await rawExchange(endpoint, head(u.pathname + u.search, t), body, { afterContinue: true }); // 2
    assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 202 /);
    const forged = await rawExchange(endpoint, head(`${u.pathname}?session=abc.${'A'.repeat(22)}`, t), body, {
      afterContinue: true,
    }); // 3
    assert.match(forged, /^HTTP\/1\.1 404 /);
    const bad = await token('cont', 'mcp:tools');
    const scope = await rawExchange(endpoint, head(u.pathname + u.search, bad), body, {
      afterContinue: true,
    });
    assert.match(scope, /^HTTP\/1\.1 403 /);
    for (let i = 0; i < 3; i++) assert.equal((await postTo(endpoint, t, ping(i))).status, 202); // 4..6
    const empty = await rawExchange(endpoint, head(u.pathname + u.search, t), body, { afterContinue: true });
    assert.match(empty, /^HTTP\/1\.1 429 /);
    assert.equal(upstream.posts.length - n, 4);
  });

  it('held: a JWT as MCP-Protocol-Version gets 400 on the GET and on a POST, never reaches the upstream nor the audit line', async () => {
    const t = await token('pv');
    const { endpoint } = await open(t);
    const n = upstream.posts.length;
    const ns = upstream.streams.length;
    const jwt = await token('someone-else');
    const r = await postTo(endpoint, t, ping(1), { 'mcp-protocol-version': jwt });
    const g = await fetch(mcpUrl, {
      headers: { authorization: `Bearer ${t}`, accept: 'text/event-stream', 'mcp-protocol-version': jwt },
    });
    await g.text();
    assert.equal(r.status, 400);
    assert.equal(g.status, 400);
    assert.equal(upstream.posts.length, n);
    assert.equal(upstream.streams.length, ns);
    await settle();
    const [h, p] = jwt.split('.');
    for (const l of gateway.auditLines) {
      const text = JSON.stringify(l);
      assert.ok(!text.includes(h!) && !text.includes(p!.slice(0, 40)), text);
    }
  });

  it('held: one audit line per POST (allowed, denied, unparsable) and one for the GET stream, each with the subject', async () => {
    const t = await token('lines');
    const { stream, endpoint } = await open(t);
    const statuses = [
      (await postTo(endpoint, t, ping(1))).status,
      (await postTo(endpoint, t, rawCall(2, '{"name":"secret","arguments":{}}'))).status,
      (await postTo(endpoint, t, '{"jsonrpc":"2.0","id":3,')).status,
    ];
    assert.deepEqual(statuses, [202, 202, 400]);
    stream.close();
    await waitFor(
      () => gateway.auditLines.find((l) => l.http_method === 'GET' && l.sub === 'lines'),
      2000,
      "the GET stream's line",
    );
    const lines = gateway.auditLines.filter((l) => l.sub === 'lines');
    assert.deepEqual(
      lines.map((l) => [l.http_method, l.decision]),
      [
        ['POST', 'allow'],
        ['POST', 'deny'],
        ['POST', 'invalid'],
        ['GET', 'allow'],
      ],
    );
    assert.equal(new Set(lines.map((l) => l.request_id)).size, 4);
  });

  /**
   * README, Audit log: "A client-supplied value the line records (`rpc_method`, `rpc_id`, `tool`,
   * `prompt`, `resource`, the entries of `calls`, `user_agent`) that holds a key or a JWT anywhere
   * ... is written as `[redacted: looks like a credential]`", and "Never in any log: keys, tokens".
   * clip() (audit/record.ts) cuts the value at 256 characters first and only then looks for a JWT:
   * a real access token (hundreds of characters) cut inside its payload is no longer three
   * segments, so its header and the first ~190 characters of its claims are written as sent.
   */
  it("defect: a client's bearer JWT given as the JSON-RPC id and as the tool name is redacted, not written cut", async () => {
    const t = await token('pasted', 'mcp:use mcp:tools', { client_id: 'cli', extra: 'x'.repeat(120) });
    assert.ok(t.length > 400, `a realistic access token (${t.length} characters)`);
    const { endpoint } = await open(t);
    const r = await postTo(endpoint, t, rawCall(t, JSON.stringify({ name: t, arguments: {} })));
    assert.equal(r.status, 202); // denied (no such tool), answered on the stream
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.sub === 'pasted' && l.http_method === 'POST'),
      2000,
      'the POST line',
    );
    const [header, payload] = t.split('.');
    const text = JSON.stringify(line);
    assert.ok(
      !text.includes(header!) && !text.includes(payload!.slice(0, 40)),
      `the token's header or claims on the line: ${text}`,
    );
    assert.equal(line.rpc_id, REDACTED);
    assert.equal(line.tool, REDACTED);
  });
});

describe('OAuth known-empty memory across a refreshed token (rate-limit step, memory store)', () => {
  it('held: the second token of a subject whose bucket is empty is refused without asking the store, for a POST and a GET alike', () => {
    const inner = createMemoryStore({ now: () => 0, sweepIntervalMs: 0 });
    let asked = 0;
    const store: RateLimitStore = {
      consume(buckets, costs) {
        asked++;
        return inner.consume(buckets, costs);
      },
      close: () => inner.close(),
    };
    const step = createRateLimit(store, createStreamCounter(), {}, () => 0);
    const defaults = { capacity: 1, refill_per_second: 0.001, max_streams: 2 };
    // An OAuth subject's limits are compiled per verified token (authenticator.ts accept()).
    const first = compileLimits('oauth:https://as.example sub-1', defaults);
    const refreshed = compileLimits('oauth:https://as.example sub-1', defaults);
    assert.notEqual(first, refreshed);
    const ctx = (limits: ReturnType<typeof compileLimits>, method: string) =>
      ({ principal: { limits }, req: { method }, calls: [] }) as unknown as RequestContext;
    step.prepay(ctx(first, 'POST'));
    assert.throws(() => step.prepay(ctx(first, 'POST')), { code: 'ERR_RATE_LIMITED' });
    assert.equal(asked, 2);
    assert.throws(() => step.prepay(ctx(refreshed, 'POST')), { code: 'ERR_RATE_LIMITED' });
    assert.throws(() => step.prepay(ctx(refreshed, 'GET')), { code: 'ERR_RATE_LIMITED' });
    assert.equal(asked, 2, 'the refreshed token asked the store again');
    // A grant with another capacity is another bucket spec: the store is asked again (the same
    // bucket key, still empty: no time passed).
    const bigger = compileLimits('oauth:https://as.example sub-1', { ...defaults, capacity: 5 });
    assert.throws(() => step.prepay(ctx(bigger, 'POST')), { code: 'ERR_RATE_LIMITED' });
    assert.equal(asked, 3);
  });
});
