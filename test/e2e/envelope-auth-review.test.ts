/**
 * Review (envelope, authentication, audit): attacks on what the upstream receives, on getting past
 * authentication, and on the audit promise (one line per request, never a key or token in it).
 *
 * "hole: ..." tests failed on the code they were written against (7ae4d0c); "holds: ..." tests
 * pass and cover a path no other test covers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startRawUpstream, raw, statuses, keyedConfig, clientHeaders } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { newKey } from '../helpers/review-config.ts';
import { waitFor } from '../helpers/net.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import type { RedisServer } from '../helpers/redis-server.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A JWT-shaped string (a JOSE header, claims, a signature segment): what a token looks like. */
const jwtLike = (sub: string) =>
  `${b64url({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64url({ sub, exp: 9999999999 })}.c2lnbmF0dXJl`;

function post(port: number, secret: string, body: string, extra = ''): string {
  return (
    `POST /mcp HTTP/1.1\r\n${clientHeaders(port, secret)}${extra}Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`
  );
}

describe('review: tool arguments in the audit line (audit.log_arguments: true)', () => {
  const secret = newKey();
  const other = newKey();
  const token = jwtLike('victim');
  let upstream: RawUpstream;
  let gateway: TestGateway;
  let port: number;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      keyedConfig(upstream.url, secret, { extra: { audit: { log_arguments: true } } }),
    );
    port = Number(new URL(gateway.url).port);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('hole: a key or a token given as an argument value (or name) under a field the redaction list does not name is written to the audit line', async () => {
    const mark = gateway.auditLines.length;
    const args = {
      query: other, // another key, pasted into a search box
      url: `https://api.example.com/v1/items?access=${token}`, // a token in a URL's query
      headers: [`Bearer ${token}`], // in an array
      [secret]: 'x', // the key as a member name
      note: 'kept', // the control: a plain argument is still logged
    };
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: args },
    });
    const r = await raw(port, post(port, secret, body));
    assert.deepEqual(statuses(r.text), [200]);
    await waitFor(() => (gateway.auditLines.length > mark ? true : undefined), 2000);
    const line = gateway.auditLines[mark] as Record<string, unknown>;
    const text = JSON.stringify(line);
    assert.equal(line.tool, 'echo');
    assert.equal((line.arguments as Record<string, unknown>).note, 'kept', 'plain arguments are logged');
    assert.ok(!text.includes(other), 'a key given as an argument value is not in the audit line');
    assert.ok(!text.includes(secret), 'a key given as an argument name is not in the audit line');
    assert.ok(
      !text.includes(token.split('.')[1] as string),
      'a token in an argument value is not in the audit line',
    );
  });
});

describe('review: a bucket that refills slower than Redis can spell its expiry (rate_limit.backend: redis)', () => {
  const secret = newKey();
  const warm = newKey();
  let redis: RedisServer;
  let upstream: RawUpstream;
  const gateways: TestGateway[] = [];

  before(async () => {
    [redis, upstream] = await Promise.all([startRedisServer(), startRawUpstream()]);
  });
  after(async () => {
    for (const g of gateways) await g.close(100);
    await upstream?.close();
    await redis?.close();
  });

  /** A gateway whose key `k` has 2 tokens refilled at `refill` per second; `w` has plenty. */
  async function gatewayWith(backend: 'memory' | 'redis', refill: number): Promise<TestGateway> {
    const config = JSON.parse(keyedConfig(upstream.url, secret)) as Record<string, unknown>;
    const keys = config.keys as Record<string, unknown>[];
    keys[0]!.rate_limit = { capacity: 2, refill_per_second: refill };
    keys.push({ label: 'w', hash: `sha256:${sha256Hex(warm)}`, allow: ['*'] });
    config.rate_limit =
      backend === 'redis'
        ? { backend, redis: { url: redis.url, prefix: `r${gateways.length}:`, timeout: '2s' } }
        : { backend };
    const gateway = await startTestGateway(JSON.stringify(config));
    gateways.push(gateway);
    const port = Number(new URL(gateway.url).port);
    // A decision before the connection to Redis is up is an on_store_error fallback: wait it out.
    await waitFor(async () => statuses((await raw(port, post(port, warm, ping(0)), 1000)).text)[0] === 200);
    return gateway;
  }
  const ping = (id: number) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });

  async function fivePings(gateway: TestGateway): Promise<number[]> {
    const port = Number(new URL(gateway.url).port);
    const out: number[] = [];
    for (let i = 1; i <= 5; i++)
      out.push(...statuses((await raw(port, post(port, secret, ping(i)), 1000)).text));
    return out;
  }

  it('holds (control): with one token a year (3.2e-8/s) Redis refuses the third request, as memory does', async () => {
    assert.deepEqual(await fivePings(await gatewayWith('memory', 3.2e-8)), [200, 200, 429, 429, 429]);
    assert.deepEqual(await fivePings(await gatewayWith('redis', 3.2e-8)), [200, 200, 429, 429, 429]);
  });

  it('hole: with refill_per_second 1e-16 (valid: min 0) the Redis bucket is deleted after every take, so it never empties', async () => {
    assert.deepEqual(await fivePings(await gatewayWith('memory', 1e-16)), [200, 200, 429, 429, 429]);
    assert.deepEqual(
      await fivePings(await gatewayWith('redis', 1e-16)),
      [200, 200, 429, 429, 429],
      'the key gets no more than its capacity from Redis either',
    );
  });
});

describe('review: Expect: 100-continue on an HTTP/1.0 request', () => {
  const secret = newKey();
  let upstream: RawUpstream;
  let gateway: TestGateway;
  let port: number;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  it('hole: the gateway answers it "HTTP/1.1 100 Continue" before the response (RFC 9110 10.1.1: a server MUST ignore it); an HTTP/1.0 client or proxy reads that as the answer', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' });
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const r = await raw(
      port,
      `POST /mcp HTTP/1.0\r\n${clientHeaders(port, secret)}Expect: 100-continue\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
      1500,
    );
    assert.deepEqual(statuses(r.text), [200], 'one answer, and no interim 100');
    assert.ok(r.text.endsWith('{"jsonrpc":"2.0","id":5,"result":{}}'));
    assert.equal(upstream.seen.length, seen + 1);
    await waitFor(() => (gateway.auditLines.length > mark ? true : undefined), 2000);
    assert.equal(gateway.auditLines.length, mark + 1);
    assert.equal(gateway.auditLines[mark]?.decision, 'allow');
  });

  it('holds: the same on HTTP/1.1 is invited with one 100 Continue, then answered', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'ping' });
    const r = await raw(
      port,
      `POST /mcp HTTP/1.1\r\n${clientHeaders(port, secret)}Expect: 100-continue\r\nConnection: close\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
      1500,
    );
    assert.deepEqual(statuses(r.text), [100, 200]);
  });
});

describe('review: request trailers and folded header lines', () => {
  const secret = newKey();
  let upstream: RawUpstream;
  let gateway: TestGateway;
  let port: number;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret, { key: { allow: ['echo'] } }));
    port = Number(new URL(gateway.url).port);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  const call = (name: string) =>
    JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name, arguments: {} } });

  it('holds: a chunked body whose trailers name a denied tool (Mcp-Method, Mcp-Name, Mcp-Param-*) reaches the upstream without them, length-framed', async () => {
    const body = call('echo');
    const seen = upstream.seen.length;
    const r = await raw(
      port,
      `POST /mcp HTTP/1.1\r\n${clientHeaders(port, secret)}Transfer-Encoding: chunked\r\n` +
        `Trailer: Mcp-Method, Mcp-Name, Mcp-Param-Path\r\nConnection: close\r\n\r\n` +
        `${body.length.toString(16)};ext=1\r\n${body}\r\n0\r\n` +
        `Mcp-Method: tools/call\r\nMcp-Name: secret_admin\r\nMcp-Param-Path: /etc/shadow\r\n\r\n`,
      1500,
    );
    assert.deepEqual(statuses(r.text), [200]);
    const forwarded = upstream.seen.slice(seen);
    assert.equal(forwarded.length, 1);
    const headers = forwarded[0]!.headers;
    // Length-framed (the id is the gateway's tag, so the length is not the client's).
    assert.match(String(headers['content-length']), /^\d+$/);
    for (const name of ['transfer-encoding', 'trailer', 'mcp-method', 'mcp-name', 'mcp-param-path'])
      assert.equal(headers[name], undefined, name);
  });

  it('holds: a folded (obs-fold) Mcp-Name or User-Agent line is refused 400 by the parser with one audit line and no key in it; nothing is forwarded', async () => {
    const body = call('echo');
    for (const folded of [
      'Mcp-Method: tools/call\r\nMcp-Name: echo\r\n secret_admin\r\n',
      'User-Agent: a\r\n\tb\r\n',
    ]) {
      const mark = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const r = await raw(
        port,
        `POST /mcp HTTP/1.1\r\n${clientHeaders(port, secret)}${folded}Content-Length: ${body.length}\r\n\r\n${body}`,
        1500,
      );
      assert.deepEqual(statuses(r.text), [400]);
      await waitFor(() => (gateway.auditLines.length > mark ? true : undefined), 2000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const lines = gateway.auditLines.slice(mark);
      assert.equal(lines.length, 1);
      assert.equal(lines[0]?.decision, 'invalid');
      assert.ok(!JSON.stringify(lines[0]).includes(secret));
      assert.equal(upstream.seen.length, seen);
    }
  });
});
