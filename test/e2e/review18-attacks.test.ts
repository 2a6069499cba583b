/**
 * Review 18: the audit promise (README "## Audit log"): one JSON line per HTTP request to the MCP
 * endpoint, written when the response has finished, whatever happened, including requests Node's
 * parser refuses and (since 9a2f02d) targets that are not a path; never a key in a line or the log;
 * nothing reaches the upstream unjudged. Attacks sent on raw sockets (node:net).
 *
 * "failed before: ..." tests failed on 9a2f02d (CONNECT had no listener, Node answered a missing
 * Host itself, a refusal was recorded before its answer went out); "holds: ..." tests pass and
 * would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { mintKey } from '../../src/auth/key-format.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startRawUpstream, raw, statuses, keyedConfig, clientHeaders } from '../helpers/raw-http.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The body of the first response in `text` (Content-Length framed). */
function firstBody(text: string): string {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
  return text.slice(head.length + 4, head.length + 4 + length);
}

describe('review 18: requests aimed at the MCP endpoint and their audit lines', () => {
  const secret = mintKey(randomBytes(32));
  const logLines: string[] = [];
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let gateway: TestGateway;
  let port: number;
  const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' });
  /** The headers a client that is let in sends (Host, key, content negotiation). */
  let good: string;

  before(async () => {
    upstream = await startRawUpstream();
    gateway = await startTestGateway(
      keyedConfig(upstream.url, secret),
      {},
      { log: createLogger({ level: 'debug', destination: { write: (l: string) => void logLines.push(l) } }) },
    );
    port = Number(new URL(gateway.url).port);
    good = clientHeaders(port, secret);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
  });

  /** Lines added since `mark`, after letting the observer and the writer run. */
  async function linesSince(mark: number, settleMs = 250): Promise<Record<string, unknown>[]> {
    await sleep(settleMs);
    return gateway.auditLines.slice(mark);
  }

  function noSecretAnywhere(what: string, answer: string): void {
    assert.doesNotMatch(JSON.stringify(gateway.auditLines), new RegExp(secret), `${what}: audit`);
    assert.doesNotMatch(logLines.join(''), new RegExp(secret), `${what}: log`);
    assert.doesNotMatch(answer, new RegExp(secret), `${what}: answer`);
  }

  // ---------------------------------------------------------------------------------------------
  // Holes
  // ---------------------------------------------------------------------------------------------

  /**
   * Node emits 'connect' for a CONNECT request and, with no listener, destroys the socket: no
   * answer, no audit line. The authority-form is the third target that is not a path (beside the
   * absolute-form and `*` that 9a2f02d refuses with 400 and a line), and `CONNECT /mcp` names the
   * MCP path itself, with a key.
   */
  it('failed before: CONNECT (authority-form, or CONNECT /mcp with a key) gets no answer and no audit line', async () => {
    const got: Record<string, unknown> = {};
    for (const target of [`127.0.0.1:${port}`, '/mcp']) {
      const mark = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const answer = await raw(port, `CONNECT ${target} HTTP/1.1\r\n${good}\r\n`);
      const lines = await linesSince(mark);
      assert.equal(upstream.seen.length, seen, `CONNECT ${target}: never forwarded`);
      assert.equal(upstream.events.length, 0, `CONNECT ${target}: no tunnel upstream`);
      got[target.startsWith('/') ? 'CONNECT /mcp' : 'CONNECT host:port'] = {
        status: statuses(answer.text)[0] ?? `none (${answer.text.length} bytes)`,
        lines: lines.map((l) => `${String(l.http_method)} ${String(l.status)} ${String(l.decision)}`),
      };
    }
    assert.deepEqual(got, {
      'CONNECT host:port': { status: 400, lines: ['CONNECT 400 invalid'] },
      'CONNECT /mcp': { status: 400, lines: ['CONNECT 400 invalid'] },
    });
  });

  /**
   * The same 'connect' drop kills the connection under a request the gateway already judged: a POST
   * /mcp with a CONNECT pipelined behind it never gets its answer, and the CONNECT has no line.
   */
  it('failed before: a CONNECT pipelined behind a judged POST /mcp destroys the connection: the POST gets no answer, the CONNECT no line', async () => {
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const answer = await raw(
      port,
      `POST /mcp HTTP/1.1\r\n${good}Content-Length: ${body.length}\r\n\r\n${body}` +
        `CONNECT /mcp HTTP/1.1\r\n${good}\r\n`,
    );
    const lines = await linesSince(mark);
    assert.deepEqual(
      {
        statuses: statuses(answer.text),
        lines: lines.map((l) => `${String(l.http_method)} ${String(l.status)} ${String(l.decision)}`),
        forwarded: upstream.seen.length - seen,
      },
      { statuses: [200, 400], lines: ['POST 200 allow', 'CONNECT 400 invalid'], forwarded: 1 },
    );
  });

  /**
   * Node's `requireHostHeader` (default true) answers an HTTP/1.1 request without Host with its own
   * 400, before the 'request' event: the router, the handler and clientError never see it.
   */
  it('failed before: an HTTP/1.1 request to /mcp without Host (key attached) is answered 400 by Node with no audit line', async () => {
    const cases: [string, string][] = [
      [
        'POST /mcp',
        `POST /mcp HTTP/1.1\r\nAuthorization: Bearer ${secret}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      ],
      [
        'GET /mcp',
        `GET /mcp HTTP/1.1\r\nAuthorization: Bearer ${secret}\r\nAccept: text/event-stream\r\n\r\n`,
      ],
      [
        'POST http://host/mcp',
        `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\nAuthorization: Bearer ${secret}\r\nContent-Length: 0\r\n\r\n`,
      ],
    ];
    const got: Record<string, unknown> = {};
    for (const [what, request] of cases) {
      const mark = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const answer = await raw(port, request);
      const lines = await linesSince(mark);
      assert.equal(upstream.seen.length, seen, `${what}: never forwarded`);
      got[what] = { status: statuses(answer.text)[0], lines: lines.length };
    }
    assert.deepEqual(got, {
      'POST /mcp': { status: 400, lines: 1 },
      'GET /mcp': { status: 400, lines: 1 },
      'POST http://host/mcp': { status: 400, lines: 1 },
    });
  });

  /**
   * refuseNotAPath calls recordInvalid right after writeJson, not when the response has finished:
   * the line says bytes_out 0 for the 139-byte answer it sent.
   */
  it('failed before: a not-a-path refusal is recorded before its response finished: bytes_out 0 for the answer sent', async () => {
    const mark = gateway.auditLines.length;
    const answer = await raw(
      port,
      `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\n${good}Content-Length: 0\r\nConnection: close\r\n\r\n`,
    );
    const lines = await linesSince(mark);
    assert.equal(statuses(answer.text)[0], 400);
    assert.equal(lines.length, 1);
    const sent = Buffer.byteLength(firstBody(answer.text));
    assert.ok(sent > 100, `the answer has a body (${sent} bytes)`);
    assert.equal(lines[0]!.bytes_out, sent, 'bytes_out: "response bytes sent"');
  });

  /**
   * Pipelined behind a held GET stream the 400 is queued (HTTP/1.1 answers in order), yet its line
   * is written at once, ahead of the older request's, saying status 400 and aborted false; the
   * client then leaves and the 400 is never sent, which README's fields call status 499, aborted.
   */
  it('failed before: a not-a-path request pipelined behind a GET stream gets its line before its answer is sent, and keeps "400, not aborted" when it never is', async () => {
    const mark = gateway.auditLines.length;
    const requestId = `queued-${Date.now()}`;
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => {});
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(
      `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${secret}\r\nAccept: text/event-stream\r\n\r\n` +
        `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Request-Id: ${requestId}\r\nContent-Length: 0\r\n\r\n`,
    );
    await waitFor(() => text.includes(': open'), 5000, 'the stream to open');
    await sleep(300);
    const whileQueued = gateway.auditLines
      .slice(mark)
      .map((l) => `${String(l.request_id)} ${String(l.status)}`);
    const statusesWhileQueued = statuses(text);
    socket.destroy();
    await waitFor(() => gateway.auditLines.length >= mark + 2, 5000, 'both lines');
    const queued = gateway.auditLines.slice(mark).find((l) => l.request_id === requestId)!;
    assert.deepEqual(statusesWhileQueued, [200], 'the 400 is queued behind the stream, never sent');
    assert.deepEqual(
      {
        linesWhileQueued: whileQueued,
        queuedLine: { status: queued.status, aborted: queued.aborted },
      },
      { linesWhileQueued: [], queuedLine: { status: 499, aborted: true } },
    );
  });

  // ---------------------------------------------------------------------------------------------
  // Holds
  // ---------------------------------------------------------------------------------------------

  it('holds: Upgrade (websocket, h2c) to /mcp is judged like any request: one line, no 101, no Upgrade upstream', async () => {
    const upgrades: [string, string][] = [
      [
        'websocket POST',
        `POST /mcp HTTP/1.1\r\n${good}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: ${body.length}\r\nX-Request-Id: up-ws\r\n\r\n${body}`,
      ],
      [
        'websocket GET',
        `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${secret}\r\nAccept: text/event-stream\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Request-Id: up-wsget\r\n\r\n`,
      ],
      [
        'h2c POST',
        `POST /mcp HTTP/1.1\r\n${good}Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\nContent-Length: ${body.length}\r\nX-Request-Id: up-h2c\r\n\r\n${body}`,
      ],
      [
        'unauthenticated websocket GET',
        `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Request-Id: up-anon\r\n\r\n`,
      ],
    ];
    for (const [what, request] of upgrades) {
      const mark = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const answer = await raw(port, request, what.includes('GET') && !what.includes('unauth') ? 600 : 2500);
      const lines = await linesSince(mark);
      const status = statuses(answer.text)[0];
      assert.notEqual(status, 101, what);
      assert.equal(lines.length, 1, `${what}: one line`);
      if (what.startsWith('unauthenticated')) {
        assert.equal(status, 401, what);
        assert.equal(lines[0]!.decision, 'unauthenticated', what);
        assert.equal(upstream.seen.length, seen, `${what}: never forwarded`);
      } else {
        assert.equal(status, 200, what);
        assert.equal(upstream.seen.length, seen + 1, `${what}: forwarded once, judged`);
        const headers = upstream.seen[seen]!.headers;
        assert.equal(headers.upgrade, undefined, `${what}: no Upgrade upstream`);
        assert.equal(headers['http2-settings'], undefined, `${what}: no HTTP2-Settings upstream`);
      }
    }
    assert.deepEqual(upstream.events, [], 'no upgrade or tunnel reached the upstream');
    noSecretAnywhere('upgrade', '');
  });

  it('holds: HTTP/1.0 requests (origin-form and absolute-form) get one line each', async () => {
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const a = await raw(port, `POST /mcp HTTP/1.0\r\n${good}Content-Length: ${body.length}\r\n\r\n${body}`);
    const b = await raw(
      port,
      `POST http://127.0.0.1:${port}/mcp HTTP/1.0\r\n${good}Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    const lines = await linesSince(mark);
    assert.deepEqual([statuses(a.text)[0], statuses(b.text)[0]], [200, 400]);
    assert.deepEqual(
      lines.map((l) => `${String(l.status)} ${String(l.decision)}`),
      ['200 allow', '400 invalid'],
    );
    assert.equal(upstream.seen.length, seen + 1, 'only the origin-form one reached the upstream');
  });

  it('holds: a POST /mcp with an absolute-form POST pipelined behind it: two answers, two lines, one forward', async () => {
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const answer = await raw(
      port,
      `POST /mcp HTTP/1.1\r\n${good}Content-Length: ${body.length}\r\nX-Request-Id: pipe-1\r\n\r\n${body}` +
        `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\n${good}Content-Length: ${body.length}\r\nX-Request-Id: pipe-2\r\n\r\n${body}`,
    );
    const lines = await linesSince(mark);
    assert.deepEqual(statuses(answer.text), [200, 400]);
    assert.deepEqual(lines.map((l) => l.request_id).sort(), ['pipe-1', 'pipe-2']);
    assert.equal(upstream.seen.length, seen + 1);
    assert.equal(upstream.seen[seen]!.url, '/mcp');
  });

  it('holds: path spellings that are not the MCP path (//mcp, /MCP, /mcp/, /%6dcp, /mcp#frag) get 404 and never reach the upstream', async () => {
    const seen = upstream.seen.length;
    for (const target of ['//mcp', '/MCP', '/mcp/', '/%6dcp', '/mcp#frag', '/mcp/../mcp']) {
      const answer = await raw(
        port,
        `POST ${target} HTTP/1.1\r\n${good}Content-Length: ${body.length}\r\n\r\n${body}`,
      );
      assert.equal(statuses(answer.text)[0], 404, target);
    }
    // And the ones that are the MCP path: judged and forwarded (the query never travels).
    for (const target of ['/mcp?', '/mcp?x=1']) {
      const answer = await raw(
        port,
        `POST ${target} HTTP/1.1\r\n${good}Content-Length: ${body.length}\r\n\r\n${body}`,
      );
      assert.equal(statuses(answer.text)[0], 200, target);
    }
    await sleep(100);
    assert.deepEqual(
      upstream.seen.slice(seen).map((s) => s.url),
      ['/mcp', '/mcp'],
      'only the two /mcp? requests reached the upstream, at the configured path without the query',
    );
  });

  it('holds: an absolute-form target whose body never comes: 400, one line, the connection closed, nothing forwarded', async () => {
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const answer = await raw(
      port,
      `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\n${good}Content-Length: 100000\r\n\r\n${body}`,
      5000,
    );
    const lines = await linesSince(mark);
    assert.equal(statuses(answer.text)[0], 400);
    assert.equal(answer.closed, true, 'closed by the gateway, not by the client giving up');
    assert.ok(answer.ms < 3000, `closed in ${answer.ms} ms`);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.decision, 'invalid');
    assert.equal(upstream.seen.length, seen);
  });

  it('holds: OPTIONS * and POST http://host/mcp with Expect: 100-continue get no 100, a 400, one line, a closed connection', async () => {
    for (const request of [
      `OPTIONS * HTTP/1.1\r\n${good}Expect: 100-continue\r\nContent-Length: 10\r\n\r\n`,
      `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\n${good}Expect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`,
      `OPTIONS * HTTP/1.1\r\n${good}Expect: something-else\r\nContent-Length: 10\r\n\r\n`,
    ]) {
      const what = request.slice(0, request.indexOf('\r\n'));
      const mark = gateway.auditLines.length;
      const seen = upstream.seen.length;
      const answer = await raw(port, request, 5000);
      const lines = await linesSince(mark);
      assert.deepEqual(statuses(answer.text), [400], what);
      assert.equal(answer.closed, true, what);
      assert.equal(lines.length, 1, what);
      assert.equal(lines[0]!.status, 400, what);
      assert.equal(upstream.seen.length, seen, what);
    }
  });

  it('holds: a key in an absolute target (userinfo, query) or in X-Request-Id is never logged, echoed or forwarded', async () => {
    const seen = upstream.seen.length;
    const requests = [
      `POST http://user:${secret}@127.0.0.1:${port}/mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\n\r\n`,
      `POST http://127.0.0.1:${port}/mcp?api_key=${secret} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 0\r\n\r\n`,
      `POST http://127.0.0.1:${port}/mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Request-Id: ${secret}\r\nContent-Length: 0\r\n\r\n`,
      `OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Request-Id: ${secret}\r\n\r\n`,
    ];
    for (const request of requests) {
      const mark = gateway.auditLines.length;
      const answer = await raw(port, request, 800);
      const lines = await linesSince(mark);
      assert.equal(statuses(answer.text)[0], 400);
      assert.equal(lines.length, 1);
      assert.notEqual(lines[0]!.request_id, secret);
      noSecretAnywhere(request.slice(0, 40), answer.text);
    }
    assert.equal(upstream.seen.length, seen);
  });

  it('holds: a key in the query of /mcp is refused 401 (ERR_AUTH_KEY_IN_QUERY), one line without it, nothing forwarded', async () => {
    const mark = gateway.auditLines.length;
    const seen = upstream.seen.length;
    const answer = await raw(
      port,
      `POST /mcp?api_key=${secret} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
        `Accept: application/json, text/event-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    const lines = await linesSince(mark);
    assert.equal(statuses(answer.text)[0], 401);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.reason, 'ERR_AUTH_KEY_IN_QUERY');
    assert.equal(upstream.seen.length, seen);
    noSecretAnywhere('query key', answer.text);
  });

  it('holds: an absolute target over 16 KiB with a key in it: 431, one line, no key', async () => {
    const mark = gateway.auditLines.length;
    const answer = await raw(
      port,
      `POST http://127.0.0.1:${port}/mcp?k=${secret}&pad=${'a'.repeat(20_000)} HTTP/1.1\r\n${good}Content-Length: 0\r\n\r\n`,
    );
    const lines = await linesSince(mark);
    assert.deepEqual(statuses(answer.text), [431]);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.status, 431);
    noSecretAnywhere('long target', answer.text);
  });

  it('holds: the HTTP/2 preface and a target that is neither path nor URL (POST mcp) get 400 and one line', async () => {
    for (const request of [
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      `POST mcp HTTP/1.1\r\n${good}Content-Length: 0\r\n\r\n`,
    ]) {
      const mark = gateway.auditLines.length;
      const answer = await raw(port, request);
      const lines = await linesSince(mark);
      assert.deepEqual(statuses(answer.text), [400], JSON.stringify(request.slice(0, 16)));
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!.decision, 'invalid');
    }
  });
});
