/**
 * Issue 12 (and the lossless-numbers item of issue 11), end to end through the real gateway to a
 * real SDK upstream behind a recording forwarder:
 *
 * - a key that sends only garbage empties its own bucket (429), and another key is unaffected;
 * - so does a key whose bodies are refused for their envelope (415) or their size (413);
 * - a request refused before its body was read has its connection closed, the rest never read;
 * - a client that leaves before its request was judged or forwarded is recorded as `aborted`;
 * - a key in the query string under any name, bare, or as a JWT is refused;
 * - numbers a double cannot hold reach the upstream as the client wrote them;
 * - a request body that would take the buffers over `limits.max_buffered_bytes` gets 503.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startRecorder } from '../helpers/recorder.ts';
import type { Recorder } from '../helpers/recorder.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};

function makeKey(label: string, rateLimit: Record<string, unknown>) {
  const secret = mintKey(randomBytes(32));
  return {
    label,
    secret,
    config: { label, hash: `sha256:${sha256Hex(secret)}`, allow: ['*'], rate_limit: rateLimit },
  };
}
type TestKey = ReturnType<typeof makeKey>;

function post(gateway: TestGateway, key: TestKey, body: string, path = ''): Promise<Response> {
  return send(gateway.mcpUrl + path, key, 'POST', {}, body);
}

/** A request as `key`: HEADERS, its Authorization, then `headers`. */
function send(
  url: string,
  key: TestKey,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Response> {
  return fetch(url, {
    method,
    headers: { ...HEADERS, authorization: `Bearer ${key.secret}`, ...headers },
    body,
  });
}

/** The status of such a request, its answer read and dropped. */
async function statusOf(
  url: string,
  key: TestKey,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<number> {
  const res = await send(url, key, method, headers, body);
  await res.body?.cancel();
  return res.status;
}

/**
 * A request (POST unless said) whose chunked body never ends: 64 KiB chunks written as fast as the
 * gateway takes them, until it closes the connection or `ms` have passed. Returns the answer's head,
 * whether the connection was closed, and how many bytes the gateway's side of the socket read.
 */
async function endlessBody(
  gateway: TestGateway,
  path: string,
  headers: string,
  ms = 2000,
  method = 'POST',
): Promise<{ head: string; closed: boolean; read: number }> {
  const url = new URL(gateway.mcpUrl);
  const accepted = new Promise<Socket>((resolve) => gateway.server.once('connection', resolve));
  const client = connect(Number(url.port), url.hostname);
  let closed = false;
  let answer = '';
  client.on('close', () => (closed = true));
  client.on('error', () => {});
  client.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  client.write(
    `${method} ${path} HTTP/1.1\r\nHost: ${url.host}\r\n${headers}Transfer-Encoding: chunked\r\n\r\n`,
  );
  const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 0x20), Buffer.from('\r\n')]);
  const deadline = Date.now() + ms;
  while (!closed && Date.now() < deadline) {
    if (client.write(chunk)) continue;
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 20);
      client.once('drain', () => resolve(clearTimeout(timer)));
    });
  }
  const server = await accepted;
  const read = server.bytesRead;
  client.destroy();
  return { head: answer.slice(0, answer.indexOf('\r\n\r\n')), closed, read };
}

/** The head of the answer to one request written as is (the connection is left to the gateway). */
async function headOf(gateway: TestGateway, request: string): Promise<string> {
  const url = new URL(gateway.mcpUrl);
  const client = connect(Number(url.port), url.hostname);
  let answer = '';
  client.on('data', (d: Buffer) => (answer += d.toString('latin1')));
  client.write(request.replaceAll('HOST', url.host));
  await waitFor(() => answer.includes('\r\n\r\n') || undefined, 2000, 'answer head');
  client.destroy();
  return answer.slice(0, answer.indexOf('\r\n\r\n'));
}

const echo = (id: number, message: string) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { message } },
  });

describe('bounds under hostile clients (memory store, SDK upstream)', () => {
  const keys = {
    garbage: makeKey('garbage', { capacity: 3, refill_per_second: 0.001 }),
    other: makeKey('other', { capacity: 100, refill_per_second: 100 }),
    deep: makeKey('deep', { capacity: 2, refill_per_second: 0.001 }),
    envelope: makeKey('envelope', { capacity: 3, refill_per_second: 0.001 }),
    session: makeKey('session', { capacity: 3, refill_per_second: 0.001 }),
  };
  let upstream: SdkUpstream;
  let recorder: Recorder;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    recorder = await startRecorder(upstream.url);
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: recorder.url },
        keys: Object.values(keys).map((k) => k.config),
      }),
    );
  });
  after(async () => {
    await gateway.close(100);
    await recorder.close();
    await upstream.close();
  });

  const linesOf = (key: TestKey) => gateway.auditLines.filter((l) => l.key === key.label);

  it('charges garbage bodies to their key: 400 while tokens last, then 429; another key is unaffected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await post(gateway, keys.garbage, i % 2 === 0 ? '{"jsonrpc":' : '[]');
      statuses.push(res.status);
      await res.body?.cancel();
    }
    assert.deepEqual(statuses, [400, 400, 400, 429, 429, 429]);
    // The bucket is empty: even a good call is refused now.
    const good = await post(gateway, keys.garbage, echo(1, 'garbage-key-good'));
    assert.equal(good.status, 429);
    assert.match(good.headers.get('retry-after') ?? '', /^\d+$/);
    await good.body?.cancel();
    // The other key's calls pass.
    for (let i = 0; i < 5; i++) {
      const res = await post(gateway, keys.other, echo(i, `other-${i}`));
      assert.equal(res.status, 200);
      assert.match(await res.text(), new RegExp(`Echo: other-${i}`));
    }
    await waitFor(() => linesOf(keys.garbage).length === 7 || undefined, 2000, 'audit lines');
    assert.deepEqual(
      linesOf(keys.garbage).map((l) => [l.decision, l.reason]),
      [
        ['invalid', 'ERR_PARSE'],
        ['invalid', 'ERR_INVALID_REQUEST'],
        ['invalid', 'ERR_PARSE'],
        ['rate_limited', 'ERR_RATE_LIMITED'],
        ['rate_limited', 'ERR_RATE_LIMITED'],
        ['rate_limited', 'ERR_RATE_LIMITED'],
        ['rate_limited', 'ERR_RATE_LIMITED'],
      ],
    );
    assert.equal(recorder.messages().filter((m) => JSON.stringify(m).includes('garbage-key')).length, 0);
  });

  it('charges bodies refused for their envelope (415) or their size (413) to their key, then 429', async () => {
    const key = keys.envelope;
    const status = (headers: Record<string, string>) =>
      statusOf(gateway.mcpUrl, key, 'POST', headers, echo(7, 'envelope-key'));
    const statuses = [await status({ 'content-type': 'text/plain' })];
    // A chunked body growing past limits.max_body_bytes (4 MiB): read up to it, then refused.
    const big = await endlessBody(
      gateway,
      '/mcp',
      `Authorization: Bearer ${key.secret}\r\nContent-Type: application/json\r\n`,
      5000,
    );
    statuses.push(Number(big.head.split(' ')[1]));
    statuses.push(await status({ 'content-encoding': 'gzip' }));
    // Three tokens taken: the bucket is empty, even for a good call.
    statuses.push(await status({}));
    assert.deepEqual(statuses, [415, 413, 415, 429]);
    const lines = await waitFor(() => (linesOf(key).length === 4 ? linesOf(key) : undefined), 2000, 'audit');
    assert.deepEqual(
      lines.map((l) => [l.status, l.decision, l.reason]),
      [
        [415, 'invalid', 'ERR_UNSUPPORTED_MEDIA_TYPE'],
        [413, 'invalid', 'ERR_BODY_TOO_LARGE'],
        [415, 'invalid', 'ERR_UNSUPPORTED_MEDIA_TYPE'],
        [429, 'rate_limited', 'ERR_RATE_LIMITED'],
      ],
    );
    // The 413's line says what was read: the 4 MiB held, and the chunk that crossed the limit.
    const bytesIn = lines[1]?.bytes_in as number;
    assert.ok(bytesIn > 4 * 1024 * 1024 && bytesIn <= big.read, `bytes_in ${bytesIn} of ${big.read}`);
    assert.equal(recorder.messages().filter((m) => JSON.stringify(m).includes('envelope-key')).length, 0);
  });

  it('charges requests refused for a session id the gateway did not issue (404) to their key, then 429', async () => {
    const key = keys.session;
    const forged = { 'mcp-session-id': 'not-one-the-gateway-issued' };
    // The POST's refusal carries its id, read from the small body as a 401's is.
    const refused = await send(gateway.mcpUrl, key, 'POST', forged, echo(8, 'session-key'));
    assert.equal((JSON.parse(await refused.text()) as { id: unknown }).id, 8);
    const statuses = [
      refused.status,
      await statusOf(gateway.mcpUrl, key, 'GET', forged),
      await statusOf(gateway.mcpUrl, key, 'DELETE', forged),
    ];
    // Three tokens taken: the bucket is empty, even for a good call.
    statuses.push(await statusOf(gateway.mcpUrl, key, 'POST', {}, echo(8, 'session-key')));
    assert.deepEqual(statuses, [404, 404, 404, 429]);
    const lines = await waitFor(() => (linesOf(key).length === 4 ? linesOf(key) : undefined), 2000, 'audit');
    assert.deepEqual(
      lines.map((l) => [l.status, l.decision, l.reason]),
      [
        [404, 'deny', 'ERR_SESSION_NOT_FOUND'],
        [404, 'deny', 'ERR_SESSION_NOT_FOUND'],
        [404, 'deny', 'ERR_SESSION_NOT_FOUND'],
        [429, 'rate_limited', 'ERR_RATE_LIMITED'],
      ],
    );
    assert.equal(recorder.messages().filter((m) => JSON.stringify(m).includes('session-key')).length, 0);
  });

  it('closes the connection of a request refused before its body was read: the rest is never read', async () => {
    const json = 'Content-Type: application/json\r\n';
    const cases = [
      { path: '/mcp', headers: json, status: 401, reason: 'ERR_AUTH_MISSING' },
      {
        path: '/mcp',
        headers: `Authorization: Bearer ${keys.other.secret}\r\nContent-Type: text/plain\r\n`,
        status: 415,
        reason: 'ERR_UNSUPPORTED_MEDIA_TYPE',
      },
      { path: '/elsewhere', headers: json, status: 404, reason: undefined },
    ];
    for (const { path, headers, status, reason } of cases) {
      const before = gateway.auditLines.length;
      const { head, closed, read } = await endlessBody(gateway, path, headers);
      assert.match(head, new RegExp(`^HTTP/1.1 ${status} `), path);
      assert.match(head, /\r\nconnection: close(\r\n|$)/i, `${status}: Connection: close`);
      assert.ok(closed, `${status}: the gateway closed the connection`);
      // Node would otherwise read and discard the body to reuse the connection (gigabytes in 2 s).
      assert.ok(read < 1024 * 1024, `${status}: the gateway read ${read} bytes`);
      if (reason === undefined) continue;
      const line = await waitFor(() => gateway.auditLines[before], 2000, 'audit line');
      assert.equal(line.reason, reason);
      // What the audit line says was read: at most the socket reads the 16 KiB peek took.
      assert.ok((line.bytes_in as number) <= read, `bytes_in ${String(line.bytes_in)} of ${read}`);
    }
    // A refusal with nothing left unread keeps the connection for the next request.
    const whole = await headOf(
      gateway,
      `POST /mcp HTTP/1.1\r\nHost: HOST\r\n${json}Content-Length: 2\r\n\r\n{}`,
    );
    const bodiless = await headOf(gateway, 'GET /mcp HTTP/1.1\r\nHost: HOST\r\n\r\n');
    // Answered at once, while Node has not yet marked even a bodiless request complete.
    const route = await headOf(gateway, 'POST /elsewhere HTTP/1.1\r\nHost: HOST\r\n\r\n');
    for (const [head, status] of [
      [whole, 401],
      [bodiless, 401],
      [route, 404],
    ] as const) {
      assert.match(head, new RegExp(`^HTTP/1.1 ${status} `));
      assert.match(head, /\r\nconnection: keep-alive(\r\n|$)/i, `${status}: ${head}`);
    }
  });

  it('closes the connection of an answer to a route that never reads a body: /metrics, /healthz, a DELETE refused', async () => {
    const cases = [
      { path: '/metrics', headers: '', status: 200 },
      { path: '/healthz', headers: '', status: 200 },
      // A DELETE announcing a body is refused 400 (it has none in MCP; review-getdel), its body unread.
      {
        path: '/mcp',
        method: 'DELETE',
        headers: `Authorization: Bearer ${keys.other.secret}\r\n`,
        status: 400,
      },
    ];
    for (const { path, headers, status, method } of cases) {
      const { head, closed, read } = await endlessBody(gateway, path, headers, 2000, method ?? 'GET');
      assert.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${path}: ${head}`);
      assert.match(head, /\r\nconnection: close(\r\n|$)/i, `${path}: Connection: close`);
      assert.ok(closed, `${path}: the gateway closed the connection`);
      assert.ok(read < 1024 * 1024, `${path}: the gateway read ${read} bytes`);
    }
    // Without a body, such a connection stays alive.
    const bodiless = await headOf(gateway, 'GET /metrics HTTP/1.1\r\nHost: HOST\r\n\r\n');
    assert.match(bodiless, /^HTTP\/1.1 200 /);
    assert.match(bodiless, /\r\nconnection: keep-alive(\r\n|$)/i, bodiless);
  });

  it('refuses a key with an empty bucket before reading its body (a 4 MiB body is not parsed)', async () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":${'['.repeat(60)}${']'.repeat(60)}}}}`;
    // Two tokens, then a refusal: from now on the gateway knows the bucket is empty.
    for (const expected of [200, 200, 429]) {
      const res = await post(gateway, keys.deep, deep);
      assert.equal(res.status, expected);
      await res.body?.cancel();
    }
    const big = `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"a":"${'x'.repeat(4 * 1024 * 1024 - 200)}"}}}`;
    const res = await post(gateway, keys.deep, big);
    assert.equal(res.status, 429);
    await res.body?.cancel();
    const line = await waitFor(() => linesOf(keys.deep)[3], 2000, 'audit line');
    assert.equal(line.decision, 'rate_limited');
    assert.ok((line.bytes_in as number) < 1024 * 1024, `body not read: bytes_in ${String(line.bytes_in)}`);
  });

  it('records a client that leaves in the middle of its body as aborted, never allow', async () => {
    const before = gateway.auditLines.length;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(gateway.mcpUrl, {
        method: 'POST',
        headers: { ...HEADERS, authorization: `Bearer ${keys.other.secret}`, 'content-length': '1000' },
      });
      req.on('error', () => resolve());
      req.write('{"jsonrpc":"2.0","id":77,"method":"tools/call",');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 100);
      req.on('response', () => reject(new Error('no response was expected')));
    });
    const line = await waitFor(() => gateway.auditLines[before], 2000, 'audit line of the aborted request');
    assert.equal(line.decision, 'aborted');
    assert.equal(line.reason, 'ERR_CLIENT_ABORTED');
    assert.equal(line.status, 499);
    assert.equal(line.aborted, true);
  });

  it('refuses a key in the query string under any name, bare, or as a JWT, even beside a valid header', async () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const jwt = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({ sub: 'x' })}.c2ln`;
    for (const query of [`?k=${keys.other.secret}`, `?${keys.other.secret}`, `?session=${jwt}`]) {
      const before = gateway.auditLines.length;
      const res = await post(gateway, keys.other, echo(5, 'query-key'), query);
      assert.equal(res.status, 401, query.slice(0, 12));
      await res.body?.cancel();
      const line = await waitFor(() => gateway.auditLines[before], 2000, 'audit line');
      assert.equal(line.reason, 'ERR_AUTH_KEY_IN_QUERY');
    }
    assert.equal(recorder.messages().filter((m) => JSON.stringify(m).includes('query-key')).length, 0);
  });

  it('forwards numbers a double cannot hold exactly as the client wrote them', async () => {
    const body =
      '{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"message":"numbers","record":12345678901234567890,"huge":1e400,"neg":-0,"f":1.0}}}';
    const res = await post(gateway, keys.other, body);
    assert.equal(res.status, 200);
    await res.text();
    const sent = recorder.received.find((r) => r.body.includes('"numbers"'));
    assert.ok(sent, 'the upstream received the call');
    assert.match(sent.body, /"record":12345678901234567890,"huge":1e400,"neg":-0,"f":1\.0\}/);
  });
});

describe('request bodies count in the buffer budget (limits.max_buffered_bytes: 64KiB)', () => {
  // Tokens never refilled in the test's time: one for the body refused over the budget (paid
  // before it was read), one for the call after.
  const key = makeKey('budget', { capacity: 3, refill_per_second: 0.0001 });
  // The slow body is another key's: a key's own bodies being read are capped apart (a quarter of
  // the budget, at least one body), and this is about the budget they all share.
  const slow = makeKey('slow', { capacity: 3, refill_per_second: 0.0001 });
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    gateway = await startTestGateway(
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        limits: { max_buffered_bytes: '64KiB' },
        keys: [key.config, slow.config],
      }),
    );
  });
  after(async () => {
    await gateway.close(100);
    await upstream.close();
  });

  it('refuses a body that would go over the budget with 503 and one audit line, and serves on', async () => {
    // A slow client holds most of the budget: 60 KiB announced, 56 KiB sent, the rest never (what
    // a body holds of the budget is what has arrived, not what was announced).
    const url = new URL(gateway.mcpUrl);
    const holder = connect(Number(url.port), url.hostname);
    holder.on('error', () => {});
    holder.write(
      `POST /mcp HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${slow.secret}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${60 * 1024}\r\n\r\n${' '.repeat(56 * 1024)}`,
    );
    await waitFor(
      () => gateway.budget.used >= 56 * 1024 || undefined,
      2000,
      'the slow body counted in the budget',
    );
    const before = gateway.auditLines.length;
    // An ordinary call whose 8 KiB body no longer fits.
    const call = echo(5, `over-budget ${'x'.repeat(8 * 1024)}`);
    const res = await post(gateway, key, call);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.equal(res.headers.get('content-type'), 'application/json');
    // Refused before any of it could be held, the body was never read whole: its id is not known.
    assert.deepEqual(await res.json(), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32603, message: 'gateway busy: retry shortly' },
    });
    const line = await waitFor(() => gateway.auditLines[before], 2000, 'audit line');
    assert.equal(line.status, 503);
    assert.equal(line.decision, 'rate_limited');
    assert.equal(line.reason, 'ERR_OVERLOADED');
    assert.equal(line.key, 'budget');
    // The slow client leaves: its line is the only other one, and the budget is whole again.
    holder.destroy();
    await waitFor(() => gateway.auditLines.length === before + 2 || undefined, 2000, 'holder line');
    assert.equal(gateway.auditLines.length, before + 2, 'exactly one line for the refused request');
    assert.equal(gateway.auditLines[before + 1]?.decision, 'aborted');
    await waitFor(() => gateway.budget.used === 0 || undefined, 2000, 'budget given back');
    // The gateway serves on: the same call now fits, with the key's last token.
    const again = await post(gateway, key, call);
    assert.equal(again.status, 200);
    assert.match(await again.text(), /Echo: over-budget/);
  });
});
