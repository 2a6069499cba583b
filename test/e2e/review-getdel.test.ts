/**
 * Review "getdel": the HTTP framing the last review left open (a body on a GET or DELETE, several
 * Host lines, transfer codings), then GET streams and DELETE as a whole.
 *
 * "failed before: ..." tests failed on 2181d77; "holds: ..." tests pass and would fail if the
 * defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startRawUpstream, raw, statuses, short, keyedConfig, pingPost } from '../helpers/raw-http.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The JSON-RPC error of the last answer in `text`. */
function lastError(text: string): { id: unknown; error: { code: number; message: string } } {
  return JSON.parse(text.slice(text.lastIndexOf('\r\n\r\n') + 4)) as {
    id: unknown;
    error: { code: number; message: string };
  };
}

describe('review getdel: HTTP framing on the MCP path', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let gateway: TestGateway;
  let port: number;
  /** Host and key, as a client that is let in sends them. */
  let h: string;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    h = `Host: 127.0.0.1:${port}\r\nAuthorization: Bearer ${secret}\r\nAccept: text/event-stream, application/json\r\n`;
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  /** Sends `data`, waits for `n` lines, and returns the answer, the lines and what reached the upstream. */
  async function exchange(data: string, n = 1, waitMs = 3000) {
    const from = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const r = await raw(port, data, waitMs);
    await waitFor(() => gateway.auditLines.length - from >= n);
    await sleep(50);
    return {
      ...r,
      lines: gateway.auditLines.slice(from).map(short).sort(),
      audit: gateway.auditLines.slice(from),
      forwarded: upstream.seen.slice(seen),
    };
  }

  /**
   * Node's parser fails in a malformed chunked body after it handed the request to the gateway, and
   * tells only the clientError listener, which destroyed the socket unless the request was a POST:
   * a GET or DELETE got a reset and a line saying the client had left (`499 allow aborted`).
   */
  it('failed before: a GET or DELETE with a malformed chunked body got a reset and a line saying `499 allow aborted`; now 400 with a JSON-RPC error, one line, nothing forwarded', async () => {
    for (const method of ['GET', 'DELETE']) {
      for (const chunks of ['zz\r\n', '5\r\nhelloXX0\r\n\r\n', '5\nhello\n0\n\n']) {
        const what = `${method} ${JSON.stringify(chunks)}`;
        const r = await exchange(
          `${method} /mcp HTTP/1.1\r\n${h}X-Request-Id: m1\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`,
        );
        assert.deepEqual(statuses(r.text), [400], what);
        assert.match(r.text, /\r\nConnection: close\r\n/i, what);
        assert.deepEqual(lastError(r.text), {
          jsonrpc: '2.0',
          id: null,
          error: { code: -32600, message: 'invalid request: a GET or DELETE carries no body' },
        });
        assert.equal(r.closed, true, what);
        assert.deepEqual(r.lines, [`m1 ${method} 400 invalid`], what);
        assert.equal(r.audit[0]?.reason, 'ERR_INVALID_REQUEST', what);
        assert.deepEqual(r.forwarded, [], what);
      }
    }
  });

  /**
   * RFC 9110 gives content in a GET or DELETE no meaning and MCP defines none: the gateway forwarded
   * the GET without its body (a stream opened as if the bytes were not there, the line `allow`).
   */
  it('failed before: a GET or DELETE announcing a body (Content-Length, any Transfer-Encoding) was forwarded without it; now 400 before anything is judged', async () => {
    for (const [method, framing, body] of [
      ['GET', 'Content-Length: 5', 'hello'],
      ['DELETE', 'Content-Length: 2', '{}'],
      ['GET', 'Transfer-Encoding: chunked', '0\r\n\r\n'],
      ['DELETE', 'Transfer-Encoding: chunked', '2\r\n{}\r\n0\r\n\r\n'],
    ] as const) {
      const what = `${method} ${framing}`;
      const r = await exchange(
        `${method} /mcp HTTP/1.1\r\n${h}X-Request-Id: b1\r\n${framing}\r\n\r\n${body}`,
      );
      assert.deepEqual(statuses(r.text), [400], what);
      assert.equal(lastError(r.text).error.message, 'invalid request: a GET or DELETE carries no body', what);
      assert.deepEqual(r.lines, [`b1 ${method} 400 invalid`], what);
      assert.deepEqual(r.forwarded, [], what);
    }
  });

  it('holds: a DELETE with `Content-Length: 0` (as Python requests sends one) reaches the upstream', async () => {
    const r = await exchange(
      `DELETE /mcp HTTP/1.1\r\n${h}X-Request-Id: d0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.text), [200]);
    assert.deepEqual(r.lines, ['d0 DELETE 200 allow']);
    assert.deepEqual(
      r.forwarded.map((s) => s.method),
      ['DELETE'],
    );
  });

  /**
   * The request whose body the parser failed in may be pipelined behind one still being answered:
   * the response on the socket is then the earlier request's, which is complete, and the listener
   * destroyed the socket, so the earlier request (run by the upstream) lost its answer too.
   */
  it('failed before: a malformed body pipelined behind a request still answered destroyed the connection: the first lost its answer; now both are answered in order', async () => {
    const b = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping', params: {} });
    for (const method of ['POST', 'GET']) {
      const second =
        `${method} /mcp HTTP/1.1\r\n${h}Content-Type: application/json\r\nX-Request-Id: q2\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${b.length.toString(16)}\r\n${b}XX0\r\n\r\n`;
      const r = await exchange(pingPost(h + 'Content-Type: application/json\r\n', 1, 200, 'q1') + second, 2);
      assert.deepEqual(statuses(r.text), [200, 400], method);
      assert.match(r.text, /"id":1,"result"/, method);
      assert.equal(r.closed, true, method);
      assert.deepEqual(r.lines, [`q1 POST 200 allow`, `q2 ${method} 400 invalid`], method);
      assert.deepEqual(
        r.forwarded.map((s) => s.method),
        ['POST'],
        method,
      );
    }
  });

  /**
   * Node keeps the first of several Host lines and drops the others: the Host rule (DNS rebinding)
   * judged the first, a proxy in front may have routed on the last. RFC 9112 section 3.2: 400.
   */
  it('failed before: a request with two Host lines was judged by the first and served; now 400, one line, nothing forwarded', async () => {
    const b = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: {} });
    for (const [method, extra, body] of [
      ['GET', 'host: evil.example\r\n', ''],
      ['DELETE', `HOST: 127.0.0.1:${port}\r\n`, ''],
      ['POST', `Host: evil.example\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n`, b],
    ] as const) {
      const r = await exchange(
        `${method} /mcp HTTP/1.1\r\n${h}${extra}X-Request-Id: h2\r\nConnection: close\r\n\r\n${body}`,
      );
      assert.deepEqual(statuses(r.text), [400], method);
      assert.equal(
        lastError(r.text).error.message,
        'invalid request: a request carries one Host header',
        method,
      );
      assert.deepEqual(r.lines, [`h2 ${method} 400 invalid`], method);
      assert.deepEqual(r.forwarded, [], method);
    }
  });

  /**
   * RFC 9112 section 6.1: a server that does not apply a transfer coding answers 501. Node takes any
   * list that ends in `chunked` and hands over the bytes the other codings made, undecoded, which
   * the gateway read as JSON and forwarded (as it refuses a Content-Encoding, it refuses these).
   */
  it('failed before: `Transfer-Encoding: gzip, chunked` (or two lines) was accepted, its bytes read as the body; now 501, one line, nothing forwarded', async () => {
    const b = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping', params: {} });
    const chunks = `${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`;
    for (const te of [
      'Transfer-Encoding: gzip, chunked',
      'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked',
      'Transfer-Encoding: identity, chunked',
    ]) {
      const r = await exchange(
        `POST /mcp HTTP/1.1\r\n${h}Content-Type: application/json\r\nX-Request-Id: t1\r\n${te}\r\n\r\n${chunks}`,
      );
      assert.deepEqual(statuses(r.text), [501], te);
      assert.match(r.text, /\r\nConnection: close\r\n/i, te);
      const answer = lastError(r.text);
      assert.equal(answer.id, null, te);
      assert.equal(answer.error.code, -32600, te);
      assert.match(answer.error.message, /transfer coding other than chunked/, te);
      assert.deepEqual(r.lines, ['t1 POST 501 invalid'], te);
      assert.deepEqual(r.forwarded, [], te);
    }
  });

  it('holds: `Transfer-Encoding: Chunked` (any case, one coding) is read and forwarded', async () => {
    const b = JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'ping', params: {} });
    const r = await exchange(
      `POST /mcp HTTP/1.1\r\n${h}Content-Type: application/json\r\nX-Request-Id: t2\r\nTransfer-Encoding: Chunked \r\nConnection: close\r\n\r\n${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.text), [200]);
    assert.match(r.text, /"id":4,"result"/);
    assert.deepEqual(r.lines, ['t2 POST 200 allow']);
  });
});

describe('review getdel: GET streams and DELETE', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startScriptedUpstream>>;
  let gateway: TestGateway;
  let port: number;
  let h: string;

  before(async () => {
    upstream = await startScriptedUpstream();
    upstream.set((_seen, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(
        'id: e1\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n',
      );
    });
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    h = `Host: 127.0.0.1:${port}\r\nAuthorization: Bearer ${secret}\r\nAccept: text/event-stream\r\nConnection: close\r\n`;
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  /**
   * Node joins repeated Last-Event-ID lines with ", ": a seal twice, or a seal beside an empty line,
   * is no seal, and never reaches the upstream; the client's query string never does either.
   */
  it('holds: a Last-Event-ID is forwarded only as one whole seal of this key (not repeated, not beside an empty line), and a query string on the MCP path never reaches the upstream', async () => {
    const first = await raw(
      port,
      `GET /mcp?resume=e0&last-event-id=e0 HTTP/1.1\r\n${h}X-Request-Id: l0\r\n\r\n`,
    );
    const sealed = /\nid: ([^\n]+)\n/.exec(first.text)?.[1];
    assert.ok(sealed !== undefined && sealed.startsWith('e1.'), first.text);
    assert.equal(upstream.seen.at(-1)?.url, '/mcp');
    const seen = upstream.seen.length;
    for (const lines of [
      `Last-Event-ID: ${sealed}\r\nLast-Event-ID: ${sealed}\r\n`,
      `Last-Event-ID: ${sealed}, ${sealed}\r\n`,
      `Last-Event-ID: \r\nLast-Event-ID: ${sealed}\r\n`,
      `Last-Event-ID: ${sealed}\r\nLast-Event-ID: \r\n`,
      `Last-Event-ID: e1\r\n`,
      `Last-Event-ID: ${sealed.slice(0, -1)}${sealed.endsWith('A') ? 'B' : 'A'}\r\n`,
    ]) {
      const r = await raw(port, `GET /mcp HTTP/1.1\r\n${h}${lines}X-Request-Id: l1\r\n\r\n`);
      assert.deepEqual(statuses(r.text), [400], lines);
      assert.match(lastError(r.text).error.message, /Last-Event-ID names no event/, lines);
    }
    assert.equal(upstream.seen.length, seen, 'none reached the upstream');
    const r = await raw(
      port,
      `GET /mcp HTTP/1.1\r\n${h}Last-Event-ID: ${sealed}\r\nX-Request-Id: l2\r\n\r\n`,
    );
    assert.deepEqual(statuses(r.text), [200]);
    assert.equal(upstream.seen.at(-1)?.headers['last-event-id'], 'e1');
  });
});
