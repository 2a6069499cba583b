/**
 * Attack review of the operations surface (rate limits, open-stream caps, metrics, health, site
 * checks, reload, audit, shutdown). Each describe block is one attack; the comment above it says
 * what the README promises and what the gateway did.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2, randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startAuthServer, startOAuthGateway } from '../helpers/auth-server.ts';
import type { TestAuthServer } from '../helpers/auth-server.ts';
import { waitFor } from '../helpers/net.ts';

const pbkdf2Async = promisify(pbkdf2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An upstream that answers every GET with an SSE stream it keeps open, and counts them. */
async function startStreamingUpstream() {
  const open = new Set<ServerResponse>();
  let gets = 0;
  let deletes = 0;
  let posts = 0;
  const server: Server = createServer((req, res) => {
    if (req.method === 'DELETE') {
      deletes++;
      return void res.writeHead(200).end();
    }
    if (req.method === 'GET') {
      gets++;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': open\n\n');
      open.add(res);
      res.on('close', () => open.delete(res));
      return;
    }
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      posts++;
      const message = JSON.parse(text || '{}') as { id?: string; method?: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      res.writeHead(200, {
        'content-type': 'application/json',
        ...(message.method === 'initialize' ? { 'mcp-session-id': 'upstream-session-1' } : {}),
      });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    get gets() {
      return gets;
    },
    get deletes() {
      return deletes;
    },
    get posts() {
      return posts;
    },
    get open() {
      return open.size;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Sends a GET's head on a raw socket, then closes the socket at once (the client leaves). */
function getThenLeave(url: string, authorization: string): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(u.port), u.hostname, () => {
      socket.write(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n` +
          `Authorization: ${authorization}\r\n\r\n`,
      );
      socket.end();
      socket.destroy();
    });
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
}

async function metricValue(gateway: TestGateway, name: string): Promise<number | undefined> {
  const text = await (await fetch(gateway.runtime.metricsUrl!)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/**
 * Attack: open-stream slots that never count down. README ("Rate limiting"): "a key may keep at most
 * `max_streams` (default 10) open at once (429 beyond)", and a closed stream gives its slot back.
 * With OAuth, a fresh token is verified asynchronously (WebCrypto, on the threadpool). A GET whose
 * client leaves during that verification has already closed (its 'close' settled the exchange with
 * no slot to release) when the pipeline resumes, takes a slot, enters the open-stream map, counts in
 * `mcpgate_open_streams`, and then returns on `res.destroyed` without ever releasing it. Each such
 * GET leaks one slot for good: after `max_streams` of them the subject can never open a stream
 * again on this replica (until a restart), and the gauge says streams are open that are not.
 * Fix: in handler.ts, check `res.destroyed` / `ctx.finished` before `openStream` (and release when
 * the response is already gone after it), or have the GET path release in `closed()` even when
 * it ran first (e.g. acquire only when `!ctx.finished`).
 */
describe('attack: a GET whose client leaves during token verification leaks its stream slot', () => {
  let auth: TestAuthServer;
  let upstream: Awaited<ReturnType<typeof startStreamingUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    auth = await startAuthServer();
    upstream = await startStreamingUpstream();
    gateway = await startOAuthGateway(upstream.url, auth.issuer, auth.jwksUri, [
      'rate_limit:',
      '  max_streams: 2',
    ]);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
    await auth?.close();
  });

  const token = () => auth.sign({ aud: gateway.mcpUrl, scope: 'mcp:tools', jti: randomUUID() });

  it('after clients leave mid-verification, the subject can still open max_streams streams', async () => {
    // Leave during verification (each token fresh, so each is verified). The verification runs on
    // libuv's threadpool: keeping it busy for a moment (as other WebCrypto verifications, DNS
    // lookups or file writes do under load) makes sure the client's close is seen first.
    for (let i = 0; i < 4; i++) {
      const authorization = `Bearer ${await token()}`;
      const busy = Array.from({ length: 8 }, () => pbkdf2Async('x', 'y', 60_000, 32, 'sha256'));
      await getThenLeave(gateway.mcpUrl, authorization);
      await Promise.all(busy);
    }
    await waitFor(() => gateway.finished.length >= 4 || undefined, 5000, 'the left GETs to be recorded');
    await sleep(200);
    assert.equal(upstream.gets, 0, 'no left GET reached the upstream');

    const leaked = gateway.handler.streams.size;
    const gauge = await metricValue(gateway, 'mcpgate_open_streams');
    // The subject opens a real stream: it must be served (0 of its 2 slots are in use).
    const controller = new AbortController();
    const res = await fetch(gateway.mcpUrl, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${await token()}` },
      signal: controller.signal,
    });
    const status = res.status;
    controller.abort();
    await res.body?.cancel().catch(() => {});
    assert.deepEqual(
      { status, leaked, gauge },
      { status: 200, leaked: 0, gauge: 0 },
      'streams whose clients left hold no slot, no map entry and no gauge count',
    );
  });
});

function keyConfig(label: string, secret: string, extra: Record<string, unknown> = {}) {
  return { label, hash: `sha256:${sha256Hex(secret)}`, allow: ['*'], ...extra };
}

/**
 * Attack: a /readyz that never answers. README ("Observability"): "`GET /readyz` answers 200 when
 * the upstream answers an `OPTIONS` request (cached for 1 s) and 503 when it does not"; design rule:
 * never a hang. The probe goes through the same undici pool as the POSTs (`upstream.connections`),
 * and undici's headers timeout only starts once a request is on a connection: while every
 * connection carries a long tool call (any key can start them; `call_timeout` is minutes), the
 * OPTIONS waits in the pool's queue with no deadline, `/readyz` answers nothing, and every later
 * probe joins the same pending promise. Kubernetes then sees probe timeouts, not a 503.
 * Fix: give the probe its own deadline (race it against PROBE_TIMEOUT_MS and answer 503), or probe
 * through a connection of its own (e.g. the `streams` pool, or a dedicated one-connection client).
 */
describe('attack: /readyz while every upstream connection carries a long tool call', () => {
  const secret = mintKey(randomBytes(32));
  let held: ServerResponse[] = [];
  let upstreamServer: Server;
  let gateway: TestGateway;
  before(async () => {
    upstreamServer = createServer((req, res) => {
      if (req.method === 'OPTIONS') return void res.writeHead(204).end();
      req.resume();
      req.on('end', () => held.push(res)); // a tool call that takes a long time
    });
    await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url, connections: 1 },
        auth: { session_secret: 'x'.repeat(40) },
        keys: [keyConfig('caller', secret)],
      }),
    );
  });
  after(async () => {
    for (const res of held) res.destroy();
    held = [];
    await gateway?.close(100);
    upstreamServer?.closeAllConnections();
    await new Promise<void>((r) => upstreamServer?.close(() => r()));
  });

  it('answers /readyz (200 or 503) within the probe timeout', async () => {
    const call = fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${secret}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'slow', arguments: {} },
      }),
    }).catch(() => undefined);
    await waitFor(() => held.length === 1 || undefined, 3000, 'the tool call to reach the upstream');
    const started = performance.now();
    let status: number | string;
    try {
      status = (await fetch(`${gateway.url}/readyz`, { signal: AbortSignal.timeout(4500) })).status;
    } catch (err) {
      status = `no answer after ${Math.round(performance.now() - started)} ms (${(err as Error).name})`;
    }
    assert.ok(status === 200 || status === 503, `readyz answered: ${status}`);
    for (const res of held) res.destroy();
    await call;
  });
});

/**
 * Attack: a request to the MCP endpoint with no audit line. README ("Audit log"): "One JSON line per
 * HTTP request to the MCP endpoint, written when the response has finished ..., whatever happened".
 * A POST /mcp whose headers exceed the listener's 16 KiB (`maxHeaderSize`), e.g. a 20 KiB
 * `Authorization` (a key-guessing or header-smuggling attempt), or a request line / header Node's
 * parser refuses, is answered by Node itself (431 / 400) through its default 'clientError'
 * handling: the gateway's handler never runs, so no audit line and no metric record the attempt.
 * Fix: a 'clientError' listener on the listener that answers the error itself and writes an audit
 * line (decision `invalid`, `ERR_INVALID_REQUEST` or a dedicated code, status 431/400, client_ip,
 * and the method and path when the request line was read), never echoing the oversized header.
 */
describe('attack: headers larger than the listener takes leave no audit line', () => {
  const secret = mintKey(randomBytes(32));
  let gateway: TestGateway;
  before(async () => {
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: 'http://127.0.0.1:9/mcp' },
        auth: { session_secret: 'x'.repeat(40) },
        keys: [keyConfig('k', secret)],
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
  });

  it('writes a line for a POST /mcp refused for a 20 KiB Authorization header', async () => {
    const u = new URL(gateway.mcpUrl);
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(u.port), u.hostname, () => {
        socket.write(
          `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
            `Authorization: Bearer ${'A'.repeat(20 * 1024)}\r\nContent-Length: 2\r\n\r\n{}`,
        );
      });
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    assert.match(answer.split('\r\n')[0] ?? '', /^HTTP\/1\.1 4\d\d/, 'refused');
    await sleep(200);
    assert.equal(
      gateway.auditLines.length,
      1,
      `one audit line for the refused request (answer: ${answer.split('\r\n')[0]})`,
    );
    const line = gateway.auditLines[0] as Record<string, unknown>;
    assert.equal(line.decision, 'invalid');
    assert.equal(line.reason, 'ERR_INVALID_REQUEST');
    assert.equal(line.status, 431);
    assert.ok(!JSON.stringify(line).includes('AAAAAAAA'), 'nothing of the refused header is logged');
  });
});

/**
 * Attack: flooding the upstream past the key's rate limit with DELETE. README ("Rate limiting"):
 * one token per JSON-RPC message, "so every POST takes at least one and a key cannot flood the
 * gateway or the upstream" with free messages; only GET streams are said to take no token (and they
 * are capped by max_streams). A DELETE of a session the gateway issued takes no token and is
 * forwarded every time: a key whose bucket is empty (capacity 2, no refill) still sent 50 DELETEs
 * to the upstream, each one a request the upstream must look up and answer (404 after the first).
 * Fix: charge one token per DELETE (as a refused one already is), so an empty bucket answers 429
 * and the upstream never sees it; document it beside "GET streams take no token".
 */
describe('attack: DELETE takes no token, so an empty bucket still reaches the upstream', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startStreamingUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startStreamingUpstream();
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        auth: { session_secret: 'x'.repeat(40) },
        keys: [keyConfig('tight', secret, { rate_limit: { capacity: 2, refill_per_second: 0.001 } })],
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('refuses DELETEs once the bucket is empty, and they never reach the upstream', async () => {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${secret}`,
    };
    const init = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
      }),
    });
    assert.equal(init.status, 200);
    const session = init.headers.get('mcp-session-id')!;
    await init.text();
    // Empty the bucket: one more message, then a refused one.
    for (let i = 0; i < 2; i++) {
      const r = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: { ...headers, 'mcp-session-id': session },
        body: JSON.stringify({ jsonrpc: '2.0', id: 10 + i, method: 'ping' }),
      });
      await r.text();
    }
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await fetch(gateway.mcpUrl, {
        method: 'DELETE',
        headers: { ...headers, 'mcp-session-id': session },
      });
      statuses.push(r.status);
      await r.text();
    }
    assert.deepEqual(
      { reachedUpstream: upstream.deletes, refused: statuses.filter((s) => s === 429).length },
      { reachedUpstream: 0, refused: 50 },
      'a key with an empty bucket cannot send the upstream requests',
    );
  });
});

/** Sends `head` (and nothing else) on a raw socket; resolves to the status line's code and the text. */
function rawRequest(url: string, head: string): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(u.port), u.hostname, () => socket.write(head));
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\r\n\r\n')) {
        const length = /content-length: (\d+)/i.exec(text);
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        if (length === null || Buffer.byteLength(body) >= Number(length[1])) socket.destroy();
      }
    });
    const done = () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    socket.on('close', done);
    socket.on('error', done);
  });
}

/**
 * Held: Host and Origin spellings on a loopback listener. A rebinding page controls the name, not
 * the request line; each of these is refused (403, or 404 for a target that is not the MCP path) and
 * none reaches the upstream: a trailing dot, an IPv4-mapped IPv6 literal, an empty or bad port, a
 * userinfo-like suffix, two Host headers, `Origin: null`, an upper-case Origin, and the absolute-form
 * targets `POST http://evil.example/mcp` and `GET http://127.0.0.1/metrics` (the gateway serves
 * paths only: 400, and an audit line on a listener with the MCP endpoint).
 */
describe('held: Host, Origin and request-target spellings on a loopback listener', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startStreamingUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startStreamingUpstream();
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        auth: { session_secret: 'x'.repeat(40) },
        cors: { allowed_origins: ['https://app.example.com'] },
        keys: [keyConfig('k', secret)],
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('refuses every foreign spelling; the upstream sees none', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const post = (target: string, headers: string[]) =>
      rawRequest(
        gateway.mcpUrl,
        `POST ${target} HTTP/1.1\r\n${headers.join('\r\n')}\r\nAuthorization: Bearer ${secret}\r\n` +
          `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
    const port = new URL(gateway.url).port;
    const cases: [string, string, string[]][] = [
      ['trailing dot', '/mcp', ['Host: localhost.']],
      ['trailing dot with port', '/mcp', [`Host: localhost.:${port}`]],
      ['IPv4-mapped IPv6', '/mcp', [`Host: [::ffff:127.0.0.1]:${port}`]],
      ['empty port', '/mcp', ['Host: 127.0.0.1:']],
      ['userinfo-like suffix', '/mcp', [`Host: 127.0.0.1:${port}@evil.example`]],
      ['Host list', '/mcp', ['Host: evil.example, 127.0.0.1']],
      ['decimal IPv4', '/mcp', ['Host: 2130706433']],
      ['Origin null', '/mcp', [`Host: 127.0.0.1:${port}`, 'Origin: null']],
      ['Origin upper case', '/mcp', [`Host: 127.0.0.1:${port}`, 'Origin: HTTPS://APP.EXAMPLE.COM']],
      ['Origin with path', '/mcp', [`Host: 127.0.0.1:${port}`, 'Origin: https://app.example.com/']],
      ['absolute-form, foreign', 'http://evil.example/mcp', ['Host: evil.example']],
      ['absolute-form, loopback Host', `http://evil.example/mcp`, [`Host: 127.0.0.1:${port}`]],
      ['absolute-form, own name', `http://127.0.0.1:${port}/mcp`, ['Host: evil.example']],
    ];
    const seen: Record<string, number> = {};
    for (const [what, target, headers] of cases) seen[what] = (await post(target, headers)).status;
    const metrics = await rawRequest(
      gateway.url,
      `GET http://127.0.0.1:${port}/metrics HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n`,
    );
    seen['absolute-form /metrics'] = metrics.status;
    assert.doesNotMatch(metrics.text, /mcpgate_/);
    for (const [what, status] of Object.entries(seen))
      assert.ok(status === 403 || status === 404 || status === 400, `${what}: ${status}`);
    assert.equal(upstream.posts, 0, 'nothing reached the upstream');
    // And the loopback names themselves are served.
    const ok = await post('/mcp', [`Host: LOCALHOST:${port}`]);
    assert.equal(ok.status, 200);
  });

  it('failed before: a target that is a URL or `*` gets 400 and its one audit line, and is never forwarded', async () => {
    const port = new URL(gateway.url).port;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'x' } });
    const posts = upstream.posts;
    const cases: [string, string][] = [
      ['absolute-form MCP path', `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}`],
      ['absolute-form, no path', `POST http://127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}`],
      ['asterisk-form', `OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:${port}`],
    ];
    for (const [what, head] of cases) {
      const lines = gateway.auditLines.length;
      const answer = await rawRequest(
        gateway.mcpUrl,
        `${head}\r\nAuthorization: Bearer ${secret}\r\nX-Request-Id: probe-${lines}\r\n` +
          `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      assert.equal(answer.status, 400, what);
      assert.match(answer.text, new RegExp(`x-request-id: probe-${lines}`, 'i'), what);
      const error = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4)) as {
        id: unknown;
        error: { code: number; message: string };
      };
      assert.equal(error.id, null, what);
      assert.equal(error.error.code, -32600, what);
      assert.match(error.error.message, /origin-form/, what);
      await waitFor(() => gateway.auditLines.length > lines);
      const added = gateway.auditLines.slice(lines);
      assert.equal(added.length, 1, what);
      const line = added[0]!;
      assert.equal(line.decision, 'invalid', what);
      assert.equal(line.reason, 'ERR_INVALID_REQUEST', what);
      assert.equal(line.status, 400, what);
      assert.equal(line.request_id, `probe-${lines}`, what);
      assert.equal(line.http_method, head.slice(0, head.indexOf(' ')), what);
      assert.doesNotMatch(JSON.stringify(line), new RegExp(secret), what);
    }
    assert.equal(upstream.posts, posts, 'nothing reached the upstream');
  });
});

/**
 * Held: metric labels a client controls. 200 calls with distinct tool names (one 300 characters
 * long, one holding a quote and a newline, one spelling the key), unknown methods and a batch add no
 * series: tools are `other` unless spelled in an allowlist, methods `other`, and no label carries
 * the key (only its label).
 */
describe('held: metric labels stay bounded whatever a key sends', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startStreamingUpstream>>;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startStreamingUpstream();
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        auth: { session_secret: 'x'.repeat(40) },
        policy: { unknown_methods: 'allow' },
        rate_limit: { capacity: 5, refill_per_second: 0.001 },
        keys: [keyConfig('k', secret, { allow: ['search', 'x*'] })],
      }),
    );
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('adds no series for attacker-chosen tool names and methods, and never shows the key', async () => {
    const send = async (body: unknown) => {
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${secret}`,
        },
        body: JSON.stringify(body),
      });
      await res.text();
    };
    const names = [
      ...Array.from({ length: 200 }, (_, i) => `x-tool-${i}`),
      'x'.repeat(300),
      'x"quote\nnewline',
      secret,
    ];
    for (const [i, name] of names.entries())
      await send({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name, arguments: {} } });
    for (let i = 0; i < 50; i++) await send({ jsonrpc: '2.0', id: `m${i}`, method: `custom/method-${i}` });
    await send([
      { jsonrpc: '2.0', id: 'b1', method: 'tools/call', params: { name: 'x-b', arguments: {} } },
      { jsonrpc: '2.0', id: 'b2', method: 'custom/other' },
    ]);
    await waitFor(() => gateway.finished.length >= names.length + 51 || undefined, 5000, 'all requests');
    const text = await (await fetch(gateway.runtime.metricsUrl!)).text();
    assert.ok(!text.includes(secret), 'the key is never in the metrics');
    const series = (name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`));
    const toolLabels = new Set(series('mcpgate_tool_calls_total').map((l) => /tool="([^"]*)"/.exec(l)?.[1]));
    assert.deepEqual([...toolLabels].sort(), ['other']);
    const methodLabels = new Set(
      series('mcpgate_requests_total').map((l) => /rpc_method="([^"]*)"/.exec(l)?.[1]),
    );
    for (const m of methodLabels) assert.ok(['tools/call', 'other', 'batch', 'none'].includes(m!), String(m));
    const keyLabels = new Set(series('mcpgate_rate_limited_total').map((l) => /key="([^"]*)"/.exec(l)?.[1]));
    assert.deepEqual([...keyLabels], ['k']);
  });
});

/**
 * Held: shutdown is bounded whatever is open. With a tool call the upstream never answers, a
 * /readyz stuck behind it (see above), a POST whose body trickles in, and an open GET stream,
 * close(300) returns within a few seconds, every request in flight gets its audit line, and the
 * open-stream gauge is back to 0.
 */
describe('held: shutdown with a stuck call, a stuck /readyz, a trickling body and a stream', () => {
  const secret = mintKey(randomBytes(32));
  const held: ServerResponse[] = [];
  let upstreamServer: Server;
  let gateway: TestGateway;
  before(async () => {
    upstreamServer = createServer((req, res) => {
      if (req.method === 'OPTIONS') return void res.writeHead(204).end();
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        held.push(res);
        return;
      }
      req.resume();
      req.on('end', () => held.push(res));
    });
    await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}/mcp`;
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url, connections: 1 },
        auth: { session_secret: 'x'.repeat(40) },
        keys: [keyConfig('k', secret)],
      }),
    );
  });
  after(async () => {
    for (const res of held) res.destroy();
    upstreamServer?.closeAllConnections();
    await new Promise<void>((r) => upstreamServer?.close(() => r()));
  });

  it('close(300) returns in time and writes a line for each request', async () => {
    const headers = {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${secret}`,
    };
    const call = fetch(gateway.mcpUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 's', arguments: {} },
      }),
    }).catch(() => undefined);
    await waitFor(() => held.length === 1 || undefined, 3000, 'the call upstream');
    const stream = fetch(gateway.mcpUrl, { headers: { ...headers, accept: 'text/event-stream' } })
      .then(async (r) => void (await r.text().catch(() => '')))
      .catch(() => undefined);
    await waitFor(() => held.length === 2 || undefined, 3000, 'the stream upstream');
    const ready = fetch(`${gateway.url}/readyz`).catch(() => undefined);
    const u = new URL(gateway.mcpUrl);
    const slow = connect(Number(u.port), u.hostname, () =>
      slow.write(
        `POST /mcp HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${secret}\r\n` +
          `Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"js`,
      ),
    );
    slow.on('error', () => {});
    await sleep(200);
    // (A close that hung would fail the test at its timeout; no time is asserted here.)
    await gateway.close(300);
    slow.destroy();
    await Promise.all([call, stream, ready]);
    const mcpLines = gateway.auditLines.length;
    assert.equal(mcpLines, 3, 'the call, the stream and the trickling POST each have a line');
    const text = await gateway.runtime.metrics!.render();
    assert.match(text.body, /^mcpgate_open_streams 0$/m);
  });
});
