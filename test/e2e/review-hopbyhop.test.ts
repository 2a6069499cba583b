/**
 * Review "hopbyhop": HTTP/1.1 framing and hop-by-hop semantics at both hops (client -> gateway:
 * node:http; gateway -> upstream: undici; upstream -> gateway -> client). The bar: each request is
 * judged exactly as forwarded, never desyncs a connection, gets its answer and exactly one line.
 *
 * "failed before: ..." tests failed on 937d2ad; "holds: ..." tests pass and would fail if the defence
 * went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startRawUpstream, raw, statuses, short, keyedConfig, clientHeaders } from '../helpers/raw-http.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lines since `from`, sorted; the one for bytes never read as a request is `rest ...`. */
const lines = (gateway: TestGateway, from: number) =>
  gateway.auditLines
    .slice(from)
    .map((l) => (l.http_method === undefined ? short(l).replace(/^\S+/, 'rest') : short(l)))
    .sort();

describe('review hopbyhop: a client connection that asks to be closed', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let gateway: TestGateway;
  let port: number;
  let good: string;

  /** A ping the raw upstream answers after `delay` ms, with `extra` header lines. */
  const ping = (id: number, delay: number, extra = '', version = '1.1') => {
    const b = JSON.stringify({ jsonrpc: '2.0', id, method: 'ping', params: { delay } });
    return (
      `POST /mcp HTTP/${version}\r\n${good}${extra}X-Request-Id: p${id}\r\n` +
      `Content-Length: ${b.length}\r\n\r\n${b}`
    );
  };

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    good = clientHeaders(port, secret);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  /**
   * RFC 9112 section 9.6: a server that receives `Connection: close` answers that request, then
   * closes, and processes nothing received after it. Node's parser fails on bytes after such a
   * request (HPE_CLOSED_CONNECTION) while the answers before them are still owed; the clientError
   * listener destroyed the socket there, so the requests read whole before the bytes lost their
   * answers: a ping the upstream had run (or a tool call) got nothing, and its line said 499, the
   * client aborted, which it had not.
   */
  it('failed before: bytes pipelined after a `Connection: close` request destroyed the connection: the requests before them got no answer and lines saying the client left', async () => {
    const from = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const r = await raw(port, ping(1, 200) + ping(2, 0, 'Connection: close\r\n') + ping(3, 0), 3000);
    assert.deepEqual(statuses(r.text), [200, 200]);
    assert.match(r.text, /"id":1,"result"/);
    assert.match(r.text, /Connection: close\r\n\r\n\{"jsonrpc":"2\.0","id":2,"result":\{\}\}$/);
    assert.equal(r.closed, true, 'closed after the answer to the request that asked for it');
    // The third is never processed: it does not reach the upstream, and is recorded once as such.
    assert.equal(upstream.seen.length - seen, 2);
    await waitFor(() => gateway.auditLines.length - from >= 3);
    await sleep(50);
    assert.deepEqual(lines(gateway, from), [
      'p1 POST 200 allow',
      'p2 POST 200 allow',
      'rest undefined 499 invalid aborted',
    ]);
  });

  it('failed before: the same behind an HTTP/1.0 request without keep-alive (closed by default)', async () => {
    const from = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const r = await raw(port, ping(1, 100, '', '1.0') + ping(2, 0), 3000);
    assert.deepEqual(statuses(r.text), [200]);
    assert.match(r.text, /"id":1,"result"/);
    assert.equal(r.closed, true);
    assert.equal(upstream.seen.length - seen, 1);
    await waitFor(() => gateway.auditLines.length - from >= 2);
    await sleep(50);
    assert.deepEqual(lines(gateway, from), ['p1 POST 200 allow', 'rest undefined 499 invalid aborted']);
  });

  it('failed before: a client that leaves after such bytes is seen: its request is aborted at once (the socket is still read: one no longer read ran it to its end)', async () => {
    const from = gateway.auditLines.length;
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(ping(1, 3000, 'Connection: close\r\n') + 'x'),
    );
    socket.on('error', () => {});
    await sleep(300);
    const t0 = Date.now();
    socket.destroy();
    await waitFor(() => gateway.auditLines.length - from >= 2);
    assert.ok(Date.now() - t0 < 2000, 'seen before the upstream answered');
    assert.deepEqual(lines(gateway, from), [
      'p1 POST 499 allow aborted',
      'rest undefined 499 invalid aborted',
    ]);
  });
});

describe('review hopbyhop: a POST body Node\u2019s parser cannot read', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let gateway: TestGateway;
  let port: number;
  let good: string;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    good = clientHeaders(port, secret);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping', params: {} });
  const size = body.length.toString(16);
  /** Chunked bodies llhttp fails in (after Node handed the request to the gateway), by what is wrong. */
  const broken: Record<string, [string, string]> = {
    'a chunk size that is not hex': ['chunked', `0x${size}\r\n${body}\r\n0\r\n\r\n`],
    'a chunk size that overflows': ['chunked', `fffffffffffffffff1\r\n${body}\r\n0\r\n\r\n`],
    'a chunk not ended by CRLF': ['chunked', `${size}\r\n${body}XX0\r\n\r\n`],
    'chunk lines ended by a bare LF': ['chunked', `${size}\n${body}\n0\n\n`],
    'a transfer coding that is not chunked (xchunked)': ['xchunked', `${size}\r\n${body}\r\n0\r\n\r\n`],
  };

  /**
   * Node's parser fails in such a body after it handed the request to the gateway, and tells only
   * the server's clientError listener, which destroyed the socket: the client got no answer at all
   * (a reset), and the line said 499, `aborted`, as if the client had left.
   */
  it('failed before: a malformed chunked body got no answer and a line saying the client had left; now 400 with a JSON-RPC error, one line, nothing forwarded', async () => {
    for (const [what, [coding, chunks]] of Object.entries(broken)) {
      const from = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const r = await raw(
        port,
        `POST /mcp HTTP/1.1\r\n${good}X-Request-Id: m1\r\nTransfer-Encoding: ${coding}\r\n\r\n${chunks}`,
        3000,
      );
      assert.deepEqual(statuses(r.text), [400], what);
      assert.match(r.text, /\r\nConnection: close\r\n/i, what);
      const answer = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)) as {
        id: unknown;
        error: { code: number; message: string };
      };
      assert.equal(answer.id, null, what);
      assert.equal(answer.error.code, -32600, what);
      assert.match(answer.error.message, /malformed HTTP request body/, what);
      assert.equal(r.closed, true, what);
      await waitFor(() => gateway.auditLines.length > from);
      await sleep(50);
      assert.deepEqual(lines(gateway, from), ['m1 POST 400 invalid'], what);
      assert.equal(gateway.auditLines[from]?.reason, 'ERR_INVALID_REQUEST', what);
      assert.equal(upstream.seen.length, seen, what);
    }
  });

  it('failed before: the same when the body breaks after a first good chunk, sent in its own read while the gateway reads it', async () => {
    const from = gateway.auditLines.length;
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    socket.write(
      `POST /mcp HTTP/1.1\r\n${good}X-Request-Id: m2\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"js\r\n`,
    );
    await sleep(100);
    socket.write('zz\r\nnot a chunk\r\n\r\n');
    await waitFor(() => /\}$/.test(text));
    socket.destroy();
    assert.deepEqual(statuses(text), [400]);
    await waitFor(() => gateway.auditLines.length > from);
    await sleep(50);
    assert.deepEqual(lines(gateway, from), ['m2 POST 400 invalid']);
  });

  it('failed before: with a wrong key the answer is its 401 (it was reset too), and one line', async () => {
    const from = gateway.auditLines.length;
    const wrong = good.replace(secret, mintKey(randomBytes(32)));
    const r = await raw(
      port,
      `POST /mcp HTTP/1.1\r\n${wrong}X-Request-Id: m3\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\n{\r\n0\r\n\r\n`,
      3000,
    );
    assert.deepEqual(statuses(r.text), [401]);
    await waitFor(() => gateway.auditLines.length > from);
    await sleep(50);
    assert.deepEqual(lines(gateway, from), ['m3 POST 401 unauthenticated']);
  });
});
