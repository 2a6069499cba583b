/**
 * Attack review of resource exhaustion and streaming (src/integrity/cancels.ts, src/proxy/*,
 * src/pipeline/read-body.ts, ...): what one key can make the gateway hold, and for how long.
 * "hole:" tests failed before their fix ("failed before: ..."); "holds:" tests pin what already held.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mintKey } from '../../src/auth/key-format.ts';
import {
  answerTagged,
  postBody,
  rawUpstreamConfig,
  startRawUpstreamGateway,
  withBody,
} from '../helpers/raw-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));

/** V8's gc, through a context of its own (the test runner does not pass --expose-gc). */
function collector(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap bytes in use after two full collections. */
function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('dos review: what the memory of pending requests holds', () => {
  let raw: RawUpstreamGateway;
  /** Requests the upstream received and holds open (never answered). */
  const held: ServerResponse[] = [];
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((_tag, res) => {
        held.push(res);
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    for (const res of held) res.destroy();
    await raw.close();
  });

  it('hole: a request whose 1 MiB id was never answered (its client left) kept its id and tag in memory: 1,000 per key, 10,000 in all', async () => {
    // The map that lets a client's notifications/cancelled name the tag its request was forwarded
    // under keeps each pending request's client id and tag until the answer passes: about 2.4 MB
    // for an id of 1 MiB (base64url in the tag), 9.6 MB for one of 4 MiB (max_body_bytes). A key
    // that sends pings with such ids and leaves before each answer made the gateway hold 1,000 of
    // them (about 10 GB): the heap ran out and the process died.
    const gc = collector();
    const send = async (i: number) => {
      const id = `${'x'.repeat(1024 * 1024)}${i}`;
      const controller = new AbortController();
      const seen = held.length;
      const res = postBody(
        raw,
        KEY,
        JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }),
        controller.signal,
      );
      while (held.length === seen) await new Promise((r) => setTimeout(r, 2));
      controller.abort();
      await res.catch(() => undefined);
    };
    await send(-1);
    for (const res of held.splice(0)) res.destroy();
    const lines = () => raw.gateway.auditLines.filter((l) => l.rpc_method === 'ping').length;
    while (lines() < 1) await new Promise((r) => setTimeout(r, 5));
    raw.gateway.finished.length = 0; // the test helper keeps every request's context
    const before = heapAfterGc(gc);
    const count = 24;
    for (let i = 0; i < count; i++) await send(i);
    for (const res of held.splice(0)) res.destroy();
    while (lines() < count + 1) await new Promise((r) => setTimeout(r, 5));
    raw.gateway.finished.length = 0;
    const grown = heapAfterGc(gc) - before;
    // Before the fix: about 60 MB (2.4 MB a request). After: what a run's noise makes.
    assert.ok(
      grown < 12 * 1024 * 1024,
      `the heap grew ${Math.round(grown / 1e6)} MB for ${count} left requests`,
    );
    // Every one of them has its line, as left by its client.
    const pings = raw.gateway.auditLines.filter((l) => l.rpc_method === 'ping');
    assert.equal(pings.length, count + 1);
    for (const line of pings) assert.equal(line.aborted, true);
  });
});

describe('dos review: the event loop and request headers', () => {
  let raw: RawUpstreamGateway;
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } }));
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: an Mcp-Method, Mcp-Name or Mcp-Param header with 16,000 blanks inside held the event loop 0.2-0.4 s per request', async () => {
    // Node's parser trims a header value's ends, not its inside; the gateway trimmed optional
    // whitespace with /^[ \t]+|[ \t]+$/g, which tries `[ \t]+$` from every blank of the run: quadratic.
    // One request of a key (one token) held every other request for about 0.4 s; 60 in a burst, 25 s.
    const blanks = `x${' '.repeat(16_000)}x`;
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { q: 'y' } },
    });
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    const started = performance.now();
    for (const header of ['mcp-method', 'mcp-name', 'mcp-param-q']) {
      const res = await fetch(raw.gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
          [header]: blanks,
        },
        body,
      });
      assert.equal(res.status, 400);
      const error = ((await res.json()) as { error: { code: number } }).error;
      assert.equal(error.code, -32020);
    }
    const elapsed = performance.now() - started;
    delay.disable();
    // Before the fix: 0.2-0.47 s of delay each, 0.65-1.3 s in all. After: 20 ms in all.
    assert.ok(delay.max < 150e6, `the event loop was held ${Math.round(delay.max / 1e6)} ms`);
    assert.ok(elapsed < 450, `three refusals took ${Math.round(elapsed)} ms`);
    const lines = raw.gateway.auditLines.filter((l) => l.reason === 'ERR_HEADER_MISMATCH');
    assert.equal(lines.length, 3);
  });
});

describe('dos review: a client that reads nothing of a JSON answer', () => {
  /** Size of the upstream's answer: more than the loopback socket buffers take. */
  const BIG = 16 * 1024 * 1024;
  let upstream: Server;
  let gateway: TestGateway;
  before(async () => {
    upstream = createServer(
      withBody((raw, res) => {
        const { id, method } = JSON.parse(raw.toString()) as { id: string; method: string };
        const result = method === 'ping' ? {} : { content: [{ type: 'text', text: 'x'.repeat(BIG) }] };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id, result }));
      }),
    );
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    const yaml = rawUpstreamConfig(url, KEY, ['echo'])
      .replace('refill_per_second: 100000\n', 'refill_per_second: 100000\n  max_in_flight: 1\n')
      .concat('limits:\n  send_timeout: 500ms\n');
    gateway = await startTestGateway(yaml);
  });
  after(async () => {
    await gateway.close(200);
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('hole: a JSON answer written whole was never cut by send_timeout: its bytes, its in-flight slot and its audit line waited on the client forever', async () => {
    // A response the gateway holds to match (every JSON answer) is written at its end with
    // res.end(): write() never saw it fail, so the stall timer was never armed. The client that
    // read nothing kept 16 MB in the process (outside limits.max_buffered_bytes: the relay had
    // given its reservation back), its key's max_in_flight slot (here 1: the key was locked out)
    // and no line was ever written while it kept the connection.
    const u = new URL(gateway.mcpUrl);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    });
    const socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    socket.pause(); // reads nothing
    socket.write(
      `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${KEY}\r\n` +
        `Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    try {
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.rpc_method === 'tools/call'),
        4000,
        "the stalled call's line",
      );
      assert.equal(line.reason, 'ERR_CLIENT_STALLED');
      assert.equal(line.aborted, true);
      // The key's one in-flight slot is back.
      const res = await postBody(
        { gateway } as RawUpstreamGateway,
        KEY,
        JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      );
      assert.equal(res.status, 200, await res.text());
    } finally {
      socket.destroy();
    }
  });

  it('holds: a client that reads gets the whole 16 MB answer, byte for byte, and its line says so', async () => {
    const res = await postBody(
      { gateway } as RawUpstreamGateway,
      KEY,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'tools/call',
        params: { name: 'echo', arguments: {} },
      }),
    );
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { id: number; result: { content: { text: string }[] } };
    assert.equal(answer.id, 3);
    assert.equal(answer.result.content[0]?.text.length, BIG);
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.rpc_id === 3),
      3000,
      "the read call's line",
    );
    assert.equal(line.aborted, false);
    assert.equal(line.reason, undefined);
  });
});

describe('dos review: a body sent in one-byte pieces', () => {
  let raw: RawUpstreamGateway;
  before(async () => {
    raw = await startRawUpstreamGateway(
      answerTagged((tag, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } }));
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await raw.close();
  });

  it('hole: a 1 MB body in one-byte chunks held the event loop for about a second, for one token', async () => {
    // Node's parser hands the handler every chunk of a chunked body as a Buffer and a 'data' event:
    // a body of 1 MB in 1-byte chunks (6 MB on the wire) is a million of them, about 2.5 s of the
    // event loop, in stretches of a second, while every other key's requests waited. The gateway
    // read on to the end (4 MiB: 7 s). A body that comes in more than one piece per 64 bytes (past
    // its first 1,024 pieces) is now refused and the rest of it never read.
    const u = new URL(raw.gateway.mcpUrl);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { a: 'x'.repeat(1_000_000) } },
    });
    // Each byte of the body as a chunk of its own: `1` CRLF, the byte, CRLF.
    const wire = Buffer.alloc(body.length * 6 + 5);
    for (let i = 0; i < body.length; i++) wire.write(`1\r\n${body[i] as string}\r\n`, i * 6, 'latin1');
    wire.write('0\r\n\r\n', body.length * 6, 'latin1');
    const started = performance.now();
    const socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.write(
      `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${KEY}\r\n` +
        `Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n`,
    );
    socket.write(wire);
    try {
      await waitFor(() => (answer.includes('"jsonrpc"') ? true : undefined), 10_000, 'the answer');
      const elapsed = performance.now() - started;
      assert.match(answer, /^HTTP\/1\.1 400 /);
      assert.match(answer, /"code":-32600/);
      // Before the fix: 200 after 2.7-4 s (the event loop held up to 1.1 s at a time). After: 0.3 s.
      assert.ok(elapsed < 2000, `answered after ${Math.round(elapsed)} ms`);
      const line = await waitFor(
        () => raw.gateway.auditLines.find((l) => l.http_method === 'POST'),
        3000,
        "the request's line",
      );
      assert.equal(line.reason, 'ERR_INVALID_REQUEST');
      assert.equal(line.decision, 'invalid');
      // Nothing reached the upstream: the answer is the gateway's own.
      assert.equal(line.upstream_ms, undefined);
      // Read up to the piece that went over (1,024 pieces free, then one per 64 bytes), no further.
      assert.ok((line.bytes_in as number) < 2048, `${String(line.bytes_in)} body bytes read`);
    } finally {
      socket.destroy();
    }
  });

  it('holds: a body in chunks of 100 bytes and a Content-Length body read in small socket reads pass', async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'echo', arguments: { a: 'x'.repeat(300_000) } },
    });
    const pieces: Uint8Array[] = [];
    const bytes = Buffer.from(body);
    for (let at = 0; at < bytes.length; at += 100) pieces.push(bytes.subarray(at, at + 100));
    const res = await fetch(raw.gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEY}`,
      },
      body: new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = pieces.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(next);
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(((await res.json()) as { id: number }).id, 2);
  });

  it('hole: an unauthenticated body of 15 KB in one-byte chunks was read whole to find its id: 25 ms of the event loop for each 401', async () => {
    // A request refused before its body is read (401, 429, 415) gets its id from a peek at up to
    // 16 KiB of the body. The peek read any number of pieces: 15,000 one-byte chunks cost about
    // 25 ms of CPU per 401 (14 times a plain one), with no key at all. It now stops after 64 pieces
    // and answers with a null id, as for a body too large or too slow to peek at.
    const u = new URL(raw.gateway.mcpUrl);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'ping',
      params: { pad: 'x'.repeat(15_000) },
    });
    const wire = `${[...body].map((c) => `1\r\n${c}\r\n`).join('')}0\r\n\r\n`;
    const socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => {});
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.write(
      `POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: application/json, text/event-stream\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${wire}`,
    );
    try {
      await waitFor(() => (answer.includes('"jsonrpc"') ? true : undefined), 5000, 'the answer');
      assert.match(answer, /^HTTP\/1\.1 401 /);
      assert.match(answer, /"id":null/);
      const line = await waitFor(
        () => raw.gateway.auditLines.find((l) => l.reason === 'ERR_AUTH_MISSING'),
        3000,
        "the 401's line",
      );
      // Before the fix: 15,060 bytes, one event each.
      assert.ok((line.bytes_in as number) < 1000, `the peek read ${String(line.bytes_in)} bytes`);
    } finally {
      socket.destroy();
    }
  });
});
