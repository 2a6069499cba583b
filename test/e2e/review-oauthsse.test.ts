/**
 * Attack review of today's fixes (tasks bound to their tool, dropped task statuses and related-task
 * messages, 202/204, per-grant buckets, stream expiry, cacheScope) under OAuth tokens and the older
 * HTTP+SSE upstream transport (`upstream.transport: sse`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { startAuthServer } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import type { ScriptedUpstream } from '../helpers/scripted-upstream.ts';

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

function config(port: number, upstreamUrl: string, as: TestAuthServer, tolerance = '0s'): string {
  return [
    `listen: 127.0.0.1:${port}`,
    `public_url: http://127.0.0.1:${port}/legacy/sse`,
    'upstream:',
    `  url: ${upstreamUrl}`,
    '  transport: sse',
    'auth:',
    '  session_secret: "0123456789abcdef0123456789abcdef-oauthsse"',
    '  oauth:',
    `    issuer: ${as.issuer}`,
    `    jwks_uri: ${as.jwksUri}`,
    `    clock_tolerance: ${tolerance}`,
    '    grants:',
    '      - name: big',
    '        when: { scope: mcp:all }',
    '        allow: [echo, secret]',
    '      - name: small',
    '        when: { scope: mcp:small }',
    '        allow: [echo]',
  ].join('\n');
}

describe('OAuth subject with two grants, HTTP+SSE upstream', () => {
  let as: TestAuthServer;
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let mcpUrl: string;
  const streams: OpenedStream[] = [];

  before(async () => {
    as = await startAuthServer();
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S1');
    const port = await freePort();
    gateway = await startTestGateway(config(port, upstream.url, as), {}, { listen: `127.0.0.1:${port}` });
    mcpUrl = gateway.mcpUrl;
  });
  after(async () => {
    for (const s of streams) s.close();
    await gateway.close(200);
    await upstream.close();
    await as.close();
  });

  const token = (scope: string, extra: Record<string, unknown> = {}) =>
    as.sign({ aud: mcpUrl, sub: 'alice', scope, ...extra });

  async function open(bearer: string) {
    const stream = await openStream(mcpUrl, bearer);
    streams.push(stream);
    assert.equal(stream.status, 200);
    const first = await stream.next();
    assert.equal(first.event, 'endpoint');
    return { stream, endpoint: new URL(first.data, gateway.url).href };
  }
  const post = async (url: string, bearer: string, body: unknown) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${bearer}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const event = (message: unknown) => `event: message\ndata: ${JSON.stringify(message)}\n\n`;

  it('holds: a task another token of the subject made with a tool this token lacks: its status and its question are dropped on this token\'s stream, tasks/result is "not found"', async () => {
    const big = await token('mcp:all');
    const small = await token('mcp:small');
    const b = await open(big);
    const next = upstream.nextPost();
    const r = await post(b.endpoint, big, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'secret', arguments: {}, task: { ttl: 60000 } },
    });
    assert.equal(r.status, 202, r.text);
    const forwarded = (await next) as { id: string };
    upstream.write(
      event({
        jsonrpc: '2.0',
        id: forwarded.id,
        result: { task: { taskId: 'T-secret', status: 'working' } },
      }),
    );
    assert.deepEqual(JSON.parse((await b.stream.next()).data), {
      jsonrpc: '2.0',
      id: 1,
      result: { task: { taskId: 'T-secret', status: 'working' } },
    });
    // The small token's stream (the upstream writes on its latest stream).
    const s = await open(small);
    const related = { 'io.modelcontextprotocol/related-task': { taskId: 'T-secret' } };
    upstream.write(
      event({
        jsonrpc: '2.0',
        method: 'notifications/tasks/status',
        params: { taskId: 'T-secret', status: 'completed' },
      }),
    );
    upstream.write(
      event({
        jsonrpc: '2.0',
        method: 'notifications/tasks',
        params: { taskId: 'T-secret', status: 'completed', result: { content: [] } },
      }),
    );
    upstream.write(
      event({
        jsonrpc: '2.0',
        id: 7,
        method: 'elicitation/create',
        params: { message: 'q', requestedSchema: { type: 'object' }, _meta: related },
      }),
    );
    upstream.write(
      event({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'marker' } }),
    );
    assert.equal(JSON.parse((await s.stream.next()).data).params.data, 'marker');
    const t = await post(s.endpoint, small, {
      jsonrpc: '2.0',
      id: 2,
      method: 'tasks/result',
      params: { taskId: 'T-secret' },
    });
    assert.equal(t.status, 202);
    const denied = JSON.parse((await s.stream.next()).data);
    assert.equal(denied.error.message, 'Failed to retrieve task: Task not found');
    assert.equal(upstream.posts.length, 1);
  });

  it("hole: a task status repeating taskId (first another token's task, last this token's) passed the stream", async () => {
    // failed before: both events reached the client; a first-wins client reads T-secret's status.
    const small = await token('mcp:small');
    const s = await open(small);
    const next = upstream.nextPost();
    const r = await post(s.endpoint, small, {
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: { name: 'echo', arguments: {}, task: {} },
    });
    assert.equal(r.status, 202);
    const fwd = (await next) as { id: string };
    upstream.write(
      event({ jsonrpc: '2.0', id: fwd.id, result: { task: { taskId: 'mine', status: 'working' } } }),
    );
    assert.equal(JSON.parse((await s.stream.next()).data).result.task.taskId, 'mine');
    const status = (params: string) =>
      `event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tasks","params":${params}}\n\n`;
    upstream.write(
      status('{"taskId":"T-secret","status":"completed","result":{"content":[]},"taskId":"mine"}'),
    );
    upstream.write(status('{"taskId":"T-secret","status":"completed","task\\u0049d":"mine"}'));
    upstream.write(status('{"taskId":"mine","status":"working"}'));
    const got = JSON.parse((await s.stream.next()).data);
    assert.deepEqual(got.params, { taskId: 'mine', status: 'working' });
    assert.ok(!s.stream.raw().includes('T-secret'));
  });

  it('holds: a stream ended at exp with half an event held has one line, ERR_STREAM_EXPIRED, and the half never reaches the client', async () => {
    const exp = Date.now() / 1000 + 1;
    const short = await token('mcp:all', { exp });
    const b = await open(short);
    const lines = gateway.auditLines.length;
    upstream.write(
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"half',
    );
    await assert.rejects(b.stream.next(5000));
    assert.ok(!b.stream.raw().includes('half'));
    await waitFor(() => upstream.streams.at(-1)?.closed === true);
    const mine = gateway.auditLines.slice(lines).filter((l) => l.http_method === 'GET');
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.reason, 'ERR_STREAM_EXPIRED');
  });
});

describe('exp + a clock_tolerance that is not whole seconds', () => {
  let as: TestAuthServer;
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let mcpUrl: string;
  before(async () => {
    as = await startAuthServer();
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S9');
    const port = await freePort();
    gateway = await startTestGateway(
      config(port, upstream.url, as, '10ms'),
      {},
      { listen: `127.0.0.1:${port}` },
    );
    mcpUrl = gateway.mcpUrl;
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
    await as.close();
  });

  it('hole: past exp + a clock_tolerance that is not whole seconds, a request and a stream were still let through for up to a second', async () => {
    // failed before: jose compares exp with whole seconds, so at exp + 150 ms (clock_tolerance 10ms)
    // the POST was forwarded (202) and the GET reached the upstream and gave its client an endpoint,
    // though a stream of that token is ended at exp + 10 ms.
    const exp = Math.floor(Date.now() / 1000) + 2;
    const t = await as.sign({ aud: mcpUrl, sub: 'bob', scope: 'mcp:all', exp });
    const s = await openStream(mcpUrl, t);
    const endpoint = new URL((await s.next()).data, gateway.url).href;
    await new Promise((r) => setTimeout(r, exp * 1000 + 150 - Date.now()));
    const streams = upstream.streams.length;
    const lines = gateway.auditLines.length;
    const get = await fetch(mcpUrl, {
      headers: { authorization: `Bearer ${t}`, accept: 'text/event-stream' },
    });
    const getBody = await get.text();
    const p = await fetch(endpoint, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${t}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      }),
    });
    const postBody = await p.text();
    s.close();
    // (Past exp + 1 s, jose refuses too: a run that late shows nothing, but does not fail.)
    assert.equal(get.status, 401, getBody);
    assert.match(get.headers.get('www-authenticate') ?? '', /invalid_token/);
    assert.equal(p.status, 401, postBody);
    assert.equal(upstream.streams.length, streams);
    assert.equal(upstream.posts.length, 0);
    const refused = gateway.auditLines.slice(lines).filter((l) => l.status === 401);
    assert.deepEqual(
      refused.map((l) => [l.http_method, l.reason]),
      [
        ['GET', 'ERR_AUTH_TOKEN_EXPIRED'],
        ['POST', 'ERR_AUTH_TOKEN_EXPIRED'],
      ],
    );
  });
});

describe('Streamable HTTP behind OAuth: scripted upstream', () => {
  let as: TestAuthServer;
  let upstream: ScriptedUpstream;
  let gateway: TestGateway;
  let mcpUrl: string;
  before(async () => {
    as = await startAuthServer();
    upstream = await startScriptedUpstream();
    const port = await freePort();
    const yaml = config(port, upstream.url, as)
      .replace('  transport: sse\n', '')
      .replace(`public_url: http://127.0.0.1:${port}/legacy/sse`, `public_url: http://127.0.0.1:${port}/mcp`);
    gateway = await startTestGateway(yaml, {}, { listen: `127.0.0.1:${port}` });
    mcpUrl = gateway.mcpUrl;
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
    await as.close();
  });

  it('hole: the same repeated taskId on a Streamable HTTP GET stream', async () => {
    // failed before: the status reached the client.
    const t = await as.sign({ aud: mcpUrl, sub: 'carol', scope: 'mcp:small' });
    upstream.set((seen, res) => {
      const id = (seen.body as { id: string }).id;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ jsonrpc: '2.0', id, result: { task: { taskId: 'mine', status: 'working' } } }),
      );
    });
    const headers = { authorization: `Bearer ${t}`, 'mcp-protocol-version': '2025-11-25' };
    const p = await fetch(mcpUrl, {
      method: 'POST',
      headers: { ...JSON_HEADERS, ...headers },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'echo', arguments: {}, task: {} },
      }),
    });
    assert.equal(p.status, 200, await p.text());
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const status = (params: string) =>
        `data: {"jsonrpc":"2.0","method":"notifications/tasks/status","params":${params}}\n\n`;
      res.write(status('{"taskId":"T-other","status":"completed","taskId":"mine"}'));
      res.end(status('{"taskId":"mine","status":"working"}'));
    });
    const get = await fetch(mcpUrl, { headers: { ...headers, accept: 'text/event-stream' } });
    const text = await get.text();
    assert.equal(get.status, 200);
    assert.ok(!text.includes('T-other'), text);
    assert.ok(text.includes('{"taskId":"mine","status":"working"}'), text);
  });
});

describe('HTTP+SSE upstream that accepts a POST with 200 and an empty body (the Java SDK servlet)', () => {
  let as: TestAuthServer;
  let gateway: TestGateway;
  let mcpUrl: string;
  let stream: ServerResponse | undefined;
  const posts: string[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: endpoint\ndata: /legacy/message?sessionId=J1\n\n');
      stream = res;
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posts.push(body);
      const id = (JSON.parse(body) as { id: string }).id;
      // As HttpServletSseServerTransportProvider does: the answer on the stream, then 200, no body.
      stream?.write(
        `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { content: [] } })}\n\n`,
      );
      res.writeHead(200, { 'content-length': '0' }).end();
    });
  });
  before(async () => {
    as = await startAuthServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/legacy/sse`;
    const port = await freePort();
    gateway = await startTestGateway(config(port, upstreamUrl, as), {}, { listen: `127.0.0.1:${port}` });
    mcpUrl = gateway.mcpUrl;
  });
  after(async () => {
    await gateway.close(200);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await as.close();
  });

  it('hole: the POST the upstream accepted and answered on the stream got a 502 and an upstream_error line', async () => {
    // failed before: 502 "upstream sent an invalid response" (a client retries a call that ran).
    const t = await as.sign({ aud: mcpUrl, sub: 'dave', scope: 'mcp:small' });
    const s = await openStream(mcpUrl, t);
    const endpoint = new URL((await s.next()).data, gateway.url).href;
    const lines = gateway.auditLines.length;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { ...JSON_HEADERS, authorization: `Bearer ${t}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 4,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      }),
    });
    const text = await res.text();
    const answer = JSON.parse((await s.next()).data);
    s.close();
    assert.equal(res.status, 200, text);
    assert.equal(text, '');
    assert.equal(posts.length, 1);
    assert.deepEqual(answer, { jsonrpc: '2.0', id: 4, result: { content: [] } });
    const line = gateway.auditLines.slice(lines).find((l) => l.http_method === 'POST');
    assert.equal(line?.decision, 'allow');
    assert.equal(line?.status, 200);
  });
});
