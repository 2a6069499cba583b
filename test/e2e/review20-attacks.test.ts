/**
 * Review 20: 7f2667a (client-error.ts refuseConnect reads and watches the socket Node hands over
 * after 'connect'; the 400 waits for `lastDue`, the last response on that socket in the handler's
 * in-flight list; the line when the answer is written, 499 aborted if never; the socket destroyed
 * LINGER_MS after the answer). "failed before: ..." tests failed on 7f2667a: answers Node had
 * queued on the connection (router refusals, /healthz, /readyz, /metrics) were not waited for nor
 * closed when it closed, and the in-flight list was walked per CONNECT. src/server/connect.ts now
 * follows the answers Node queues (trackQueued) and closes them as Node would. "holds: ..." tests
 * pass and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mintKey } from '../../src/auth/key-format.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import {
  startRawUpstream,
  openSocket,
  statuses,
  short,
  keyedConfig,
  clientHeaders,
  pingPost,
} from '../helpers/raw-http.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => void uncaught.push(err);

describe('review 20: the CONNECT socket handed over, and the answers due before it', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let gateway: TestGateway;
  let port: number;
  let good: string;
  const post = (id: number | string, delay = 0, rid = `p${id}`) => pingPost(good, id, delay, rid);
  const connectReq = (rid: string, p = port) =>
    `CONNECT /mcp HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nX-Request-Id: ${rid}\r\n\r\n`;

  before(async () => {
    process.on('uncaughtException', onUncaught);
    upstream = await startRawUpstream();
    gateway = await startTestGateway(keyedConfig(upstream.url, secret));
    port = Number(new URL(gateway.url).port);
    good = clientHeaders(port, secret);
  });
  after(async () => {
    await gateway?.close(100);
    await upstream?.close();
    process.off('uncaughtException', onUncaught);
  });

  async function ownGateway(extra: Record<string, unknown> = {}) {
    const gw = await startTestGateway(keyedConfig(upstream.url, secret, { extra }));
    return { gw, port: Number(new URL(gw.url).port) };
  }

  const abs = (rid: string, p = port, g = good) =>
    `POST http://x/mcp HTTP/1.1\r\n${g.replace(/Host: [^\r]*/, `Host: 127.0.0.1:${p}`)}X-Request-Id: ${rid}\r\nContent-Length: 0\r\n\r\n`;
  const keyless = (rid: string, p = port) =>
    `GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:${p}\r\nAccept: text/event-stream\r\nX-Request-Id: ${rid}\r\n\r\n`;
  const ids = (text: string) => [...text.matchAll(/X-Request-Id: (\S+)/gi)].map((m) => m[1]);

  // ---------------------------------------------------------------------------------------------
  // Holes
  // ---------------------------------------------------------------------------------------------

  /**
   * lastDue only knows the handler's in-flight list. A router refusal (or a reserved path) is not
   * in it: with none of the list ahead, the 400 is written and the socket ended at once. Node
   * assigns the socket to the next queued response only when the one before has finished (a write
   * callback later), so the second queued refusal is written after the end (write after end, the
   * socket destroyed), and the third and fourth, still queued, never see a 'close': no line at all,
   * not even after gateway close (Node's own 'close' handling of the queue was removed at 'connect').
   */
  it('failed before: four absolute-form refusals pipelined before a CONNECT: the client gets two of five answers, the second refusal is 499, the third and fourth never get a line (not even at gateway close)', async () => {
    const { gw, port: p } = await ownGateway();
    const g = good.replace(/Host: [^\r]*/, `Host: 127.0.0.1:${p}`);
    try {
      const c = await openSocket(p);
      c.socket.write(
        abs('t1', p, g) + abs('t2', p, g) + abs('t3', p, g) + abs('t4', p, g) + connectReq('t5', p),
      );
      await sleep(1500);
      const received = { statuses: statuses(c.text), ids: ids(c.text) };
      await gw.close(300);
      assert.deepEqual(
        { received, lines: gw.auditLines.map(short).sort() },
        {
          received: { statuses: [400, 400, 400, 400, 400], ids: ['t1', 't2', 't3', 't4', 't5'] },
          lines: [
            't1 POST 400 invalid',
            't2 POST 400 invalid',
            't3 POST 400 invalid',
            't4 POST 400 invalid',
            't5 CONNECT 400 invalid',
          ],
        },
      );
    } finally {
      await gw.close(100);
    }
  });

  it('failed before: two /healthz pipelined before a CONNECT (or a slow POST, an absolute-form refusal and /healthz): the last /healthz answer is lost, the 400 goes out in its place', async () => {
    const hz = (rid: string) =>
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Request-Id: ${rid}\r\n\r\n`;
    const got: Record<string, number[]> = {};
    for (const [what, data] of [
      ['healthz healthz CONNECT', hz('h1') + hz('h2') + connectReq('h3')],
      [
        'slow POST, absolute-form, healthz, CONNECT',
        post(1, 300, 'b1') + abs('b2') + hz('b3') + connectReq('b4'),
      ],
    ] as const) {
      const c = await openSocket(port);
      c.socket.write(data);
      await sleep(1000);
      got[what] = statuses(c.text);
    }
    assert.deepEqual(got, {
      'healthz healthz CONNECT': [200, 200, 400],
      'slow POST, absolute-form, healthz, CONNECT': [200, 400, 200, 400],
    });
  });

  /**
   * A reserved path whose answer is written later (GET /metrics renders in a promise; GET /readyz
   * waits for the upstream probe) is not in the in-flight list either: the CONNECT's 400 is
   * written and the socket ended before that answer, which is then lost.
   */
  it('failed before: GET /metrics or GET /readyz pipelined before a CONNECT: the 400 overtakes the answer, which is lost', async () => {
    const got: Record<string, number[]> = {};
    {
      const c = await openSocket(port);
      c.socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n` + connectReq('m2'));
      await sleep(1000);
      got['GET /metrics, CONNECT'] = statuses(c.text);
    }
    upstream.state.optionsDelay = 300;
    try {
      await sleep(1100); // the readiness cache (1 s) expires
      const c = await openSocket(port);
      c.socket.write(`GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n` + connectReq('r2'));
      await sleep(1000);
      got['GET /readyz (probe 300 ms), CONNECT'] = statuses(c.text);
      await sleep(1100);
      const d = await openSocket(port);
      d.socket.write(
        post(1, 100, 'a1') + `GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n` + connectReq('a3'),
      );
      await sleep(1000);
      got['POST (100 ms), GET /readyz (probe 300 ms), CONNECT'] = statuses(d.text);
    } finally {
      upstream.state.optionsDelay = 0;
    }
    assert.deepEqual(got, {
      'GET /metrics, CONNECT': [200, 400],
      'GET /readyz (probe 300 ms), CONNECT': [200, 400],
      'POST (100 ms), GET /readyz (probe 300 ms), CONNECT': [200, 200, 400],
    });
  });

  /**
   * refuseConnect destroys the socket on the client's end, but the answers queued on it (Node's
   * state.outgoing, not the current one) are never closed: Node's own socket 'close' handling was
   * removed at 'connect'. Requests queued ahead of the CONNECT then never finish: no line, and their
   * contexts stay in the handler's in-flight list (a leak the O(n) scan then walks at every CONNECT,
   * and graceful close waits its whole grace for them). Without the CONNECT all four get a line.
   */
  it('failed before: a client that leaves with answers queued ahead of a CONNECT: the queued requests never get their lines and stay in the in-flight list (gateway close then waits its grace and forces them)', async () => {
    const { gw, port: p } = await ownGateway();
    const g = good.replace(/Host: [^\r]*/, `Host: 127.0.0.1:${p}`);
    const postP = (rid: string) => {
      const b = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { delay: 400 } });
      return `POST /mcp HTTP/1.1\r\n${g}X-Request-Id: ${rid}\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
    };
    try {
      async function run(withConnect: boolean, tag: string) {
        const mark = gw.auditLines.length;
        const c = await openSocket(p);
        c.socket.write(
          postP(`${tag}1`) +
            keyless(`${tag}2`, p) +
            abs(`${tag}3`, p, g) +
            keyless(`${tag}4`, p) +
            (withConnect ? connectReq(`${tag}5`, p) : ''),
        );
        await sleep(150);
        c.socket.destroy();
        await sleep(1500);
        return { lines: gw.auditLines.slice(mark).map(short).sort(), inflight: gw.handler.inflight.size };
      }
      const without = await run(false, 'z');
      const withConnect = await run(true, 'y');
      const t0 = performance.now();
      const { forced } = await gw.close(1000);
      const closeMs = Math.round(performance.now() - t0);
      const yAtClose = gw.auditLines
        .map(short)
        .filter((l) => l.startsWith('y'))
        .sort();
      assert.deepEqual(without, {
        lines: [
          'z1 POST 499 allow aborted',
          'z2 GET 401 unauthenticated aborted',
          'z3 POST 499 invalid aborted',
          'z4 GET 401 unauthenticated aborted',
        ],
        inflight: 0,
      });
      assert.deepEqual(
        { withConnect, forced, closeFast: closeMs < 500, yAtClose },
        {
          yAtClose: [
            'y1 POST 499 allow aborted',
            'y2 GET 401 unauthenticated aborted',
            'y3 POST 499 invalid aborted',
            'y4 GET 401 unauthenticated aborted',
            'y5 CONNECT 499 invalid aborted',
          ],
          withConnect: {
            lines: [
              'y1 POST 499 allow aborted',
              'y2 GET 401 unauthenticated aborted',
              'y3 POST 499 invalid aborted',
              'y4 GET 401 unauthenticated aborted',
              'y5 CONNECT 499 invalid aborted',
            ],
            inflight: 0,
          },
          forced: 0,
          closeFast: true,
        },
      );
    } finally {
      await gw.close(100);
    }
  });

  /**
   * lastDue walks the whole in-flight list (InflightList.entries() copies it, contextsOf maps the
   * copy) at every CONNECT. A client with one key holds 1,000 keyless requests queued behind one
   * GET stream per connection (Node parses a whole read before it pauses): 50 connections put
   * 50,050 contexts in the list, and each CONNECT, one per cheap connection, then costs
   * milliseconds of the event loop.
   */
  it('failed before: each CONNECT walked every request in flight (50,050 of them measured at 18x the CPU of an idle CONNECT); it now looks at its own connection only', async () => {
    const { gw, port: p } = await ownGateway({ rate_limit: { max_streams: 1000 } });
    const hdr = `Host: 127.0.0.1:${p}\r\n`;
    const holders: Awaited<ReturnType<typeof openSocket>>[] = [];
    // Counts walks of the in-flight list (what the CONNECT answer used to scan).
    const inflight = gw.handler.inflight as { [Symbol.iterator]: () => Iterator<unknown> };
    const iterate = inflight[Symbol.iterator].bind(inflight);
    let walks = 0;
    inflight[Symbol.iterator] = () => {
      walks++;
      return iterate();
    };
    try {
      for (let k = 0; k < 5; k++) {
        const c = await openSocket(p);
        c.socket.write(
          `GET /mcp HTTP/1.1\r\n${hdr}Authorization: Bearer ${secret}\r\nAccept: text/event-stream\r\n\r\n` +
            `GET /mcp HTTP/1.1\r\n${hdr}Accept: text/event-stream\r\n\r\n`.repeat(100),
        );
        holders.push(c);
      }
      await waitFor(() => gw.handler.inflight.size > 500, 5000, 'the queued requests in flight');
      const connects = await Promise.all(Array.from({ length: 100 }, () => openSocket(p)));
      for (const c of connects) c.socket.write(`CONNECT /mcp HTTP/1.1\r\n${hdr}\r\n`);
      await waitFor(() => connects.every((c) => c.closed), 10000, 'every CONNECT answered and closed');
      for (const c of connects) assert.match(c.text, /^HTTP\/1\.1 400 /);
      assert.equal(walks, 0, 'no CONNECT walked the requests in flight');
    } finally {
      inflight[Symbol.iterator] = iterate;
      for (const c of holders) c.socket.destroy();
      await gw.close(100);
    }
  });

  it("failed before: the metrics listener (metrics.listen) has no 'connect' listener: a CONNECT pipelined behind GET /metrics destroys the connection, the /metrics answer is lost and the CONNECT gets no answer", async () => {
    const mp = await freePort();
    const { gw } = await ownGateway({ metrics: { listen: `127.0.0.1:${mp}` } });
    try {
      const alone = await openSocket(mp);
      alone.socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${mp}\r\n\r\n`);
      const c = await openSocket(mp);
      c.socket.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${mp}\r\n\r\n` + connectReq('mm', mp));
      await sleep(800);
      assert.deepEqual(statuses(alone.text), [200], 'alone it is answered');
      alone.socket.destroy();
      assert.deepEqual(statuses(c.text), [200, 400]);
    } finally {
      await gw.close(100);
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Holds
  // ---------------------------------------------------------------------------------------------

  it('holds: a slow POST, one absolute-form refusal and a CONNECT: 200, 400, 400 in order, one line each', async () => {
    const mark = gateway.auditLines.length;
    const c = await openSocket(port);
    c.socket.write(post(1, 300, 'o1') + abs('o2') + connectReq('o3'));
    await sleep(1000);
    assert.deepEqual(
      { statuses: statuses(c.text), ids: ids(c.text), closed: c.closed },
      { statuses: [200, 400, 400], ids: ['o1', 'o2', 'o3'], closed: true },
    );
    assert.deepEqual(gateway.auditLines.slice(mark).map(short), [
      'o1 POST 200 allow',
      'o2 POST 400 invalid',
      'o3 CONNECT 400 invalid',
    ]);
  });

  it('holds: a CONNECT with Expect: 100-continue and a body length: no 100, 400, one line, closed', async () => {
    const mark = gateway.auditLines.length;
    const c = await openSocket(port);
    c.socket.write(
      `CONNECT /mcp HTTP/1.1\r\n${good}Expect: 100-continue\r\nContent-Length: 10\r\nX-Request-Id: e1\r\n\r\n`,
    );
    await sleep(800);
    assert.deepEqual(
      { statuses: statuses(c.text), closed: c.closed, lines: gateway.auditLines.slice(mark).map(short) },
      { statuses: [400], closed: true, lines: ['e1 CONNECT 400 invalid'] },
    );
  });

  it('holds: a CONNECT behind a POST whose upstream dies mid-answer: 502 then 400, one line each', async () => {
    const mark = gateway.auditLines.length;
    const c = await openSocket(port);
    c.socket.write(post(1, -150, 'c1') + connectReq('c2'));
    await sleep(1000);
    assert.deepEqual(
      { statuses: statuses(c.text), closed: c.closed, lines: gateway.auditLines.slice(mark).map(short) },
      { statuses: [502, 400], closed: true, lines: ['c1 POST 502 upstream_error', 'c2 CONNECT 400 invalid'] },
    );
  });

  it('holds: a CONNECT sent on a kept connection while the gateway drains: answered after the POST within grace (200, 400), 503 for the POST the grace cuts and 499 for the CONNECT behind it; every line written before close() resolves', async () => {
    const got: Record<string, unknown> = {};
    for (const [delay, grace] of [
      [300, 1000],
      [800, 100],
    ] as const) {
      const { gw, port: p } = await ownGateway();
      const g = good.replace(/Host: [^\r]*/, `Host: 127.0.0.1:${p}`);
      const b = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { delay } });
      const c = await openSocket(p);
      try {
        c.socket.write(
          `POST /mcp HTTP/1.1\r\n${g}X-Request-Id: d1\r\nContent-Length: ${b.length}\r\n\r\n${b}`,
        );
        await sleep(50);
        const closing = gw.close(grace);
        await sleep(50);
        c.socket.write(connectReq('d2', p));
        await closing;
        const atClose = gw.auditLines.map(short);
        await sleep(1300);
        got[`${delay}/${grace}`] = { statuses: statuses(c.text), atClose, later: gw.auditLines.length };
      } finally {
        c.socket.destroy();
        await gw.close(100);
      }
    }
    assert.deepEqual(got, {
      '300/1000': {
        statuses: [200, 400],
        atClose: ['d1 POST 200 allow', 'd2 CONNECT 400 invalid'],
        later: 2,
      },
      // The POST the grace cuts gets the shutdown's 503 (Connection: close), so the CONNECT behind
      // it is never answered.
      '800/100': {
        statuses: [503],
        atClose: ['d1 POST 503 deny', 'd2 CONNECT 499 invalid aborted'],
        later: 2,
      },
    });
  });

  it('holds: 2,000 CONNECT connections (half the clients half-open, never closing): every one answered 400 with one line; the gateway side of each is destroyed after the linger; fds and handles back to the start', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const tcp = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const mark = gateway.auditLines.length;
    await sleep(300);
    const before = { fds: fds(), tcp: tcp() };
    const clients: Awaited<ReturnType<typeof openSocket>>[] = [];
    for (let b = 0; b < 2000; b += 200) {
      const batch = await Promise.all(Array.from({ length: 200 }, (_v, k) => openSocket(port, k % 2 === 1)));
      for (const [j, c] of batch.entries()) c.socket.write(connectReq(`mass-${b + j}`));
      clients.push(...batch);
    }
    await waitFor(() => clients.every((c) => c.text.includes('}')), 10000, 'answers');
    await sleep(1600);
    // Only the 1,000 half-open client sides are left; the gateway's are gone.
    const afterLinger = { fds: fds() - before.fds, tcp: tcp() - before.tcp };
    for (const c of clients) c.socket.destroy();
    await sleep(300);
    const lines = gateway.auditLines.slice(mark);
    assert.deepEqual(
      {
        afterLinger,
        end: { fds: fds(), tcp: tcp() },
        lines: lines.length,
        all400: lines.every((l) => l.status === 400 && l.http_method === 'CONNECT'),
        answers: clients.filter((c) => statuses(c.text)[0] === 400).length,
      },
      { afterLinger: { fds: 1000, tcp: 1000 }, end: before, lines: 2000, all400: true, answers: 2000 },
    );
  });

  it('holds: no uncaught exception in this process throughout the attacks above', () => {
    assert.deepEqual(uncaught, []);
  });
});
