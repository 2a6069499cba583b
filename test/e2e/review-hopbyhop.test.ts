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
  /** The lines since `from`, sorted; the one for bytes never read as a request is `rest ...`. */
  const lines = (from: number) =>
    gateway.auditLines
      .slice(from)
      .map((l) => (l.http_method === undefined ? short(l).replace(/^\S+/, 'rest') : short(l)))
      .sort();

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
    assert.deepEqual(lines(from), [
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
    assert.deepEqual(lines(from), ['p1 POST 200 allow', 'rest undefined 499 invalid aborted']);
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
    assert.deepEqual(lines(from), ['p1 POST 499 allow aborted', 'rest undefined 499 invalid aborted']);
  });
});
