/**
 * Attack review of the session that made an HTTP+SSE stream a reload keeps for its owed answers
 * end at its key's new expiry (after a build that refused its session's new POSTs instead, which
 * this review found locked sessions up), split the relay's send watch and tail pump into files of their
 * own, timed the OAuth token cache on the monotonic clock and refused Mcp-Param numbers with a
 * leading zero. `hole:` tests say what failed before their fix; `holds:` tests are attacks that did
 * not get through, kept so a regression shows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { legacyClients, messageEvent, postAs } from '../helpers/legacy-session.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { waitFor } from '../helpers/net.ts';
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Relay } from '../../src/proxy/relay.ts';
import type { ResponseRewrite } from '../../src/proxy/relay.ts';
import { BufferBudget } from '../../src/proxy/body-buffer.ts';
import { createResponseHead } from '../../src/proxy/response-headers.ts';
import { KeepaliveWheel } from '../../src/proxy/keepalive.ts';
import { startOrigin } from '../helpers/relay-harness.ts';
import { SendWatch } from '../../src/proxy/send-watch.ts';
import type { StallOwner } from '../../src/proxy/send-watch.ts';
import { TAIL_SLICE, TailPump } from '../../src/proxy/tail-pump.ts';

const SECRET = 'r'.repeat(40);
const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } };
const answer = (id: string) =>
  messageEvent({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ran' }] } });

/**
 * An HTTP+SSE session of `alice` with a tool call in flight, then a reload that changes only her
 * label (the stream is kept until it delivered that call's answer).
 */
async function keptSession(
  run: (s: {
    gateway: TestGateway;
    upstream: RawSseUpstream;
    alice: KeySpec;
    a: Awaited<ReturnType<ReturnType<typeof legacyClients>['open']>>;
    id: string;
  }) => Promise<void>,
): Promise<void> {
  const upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S1`);
  const alice: KeySpec = { label: 'alice', key: newKey() };
  const conf = (a: KeySpec) =>
    reviewConfig(upstream.url, [a], '  transport: sse\n', { secret: SECRET, resources: [] });
  const gateway = await startTestGateway(conf(alice));
  const opened: OpenedStream[] = [];
  try {
    const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);
    const a = await open(alice.key);
    const { id } = await forwarded(alice.key, a.endpoint, call);
    const outcome = await gateway.runtime.reload(
      parseConfigText(conf({ ...alice, label: 'alice2' }), {}, Date.now()).config!,
    );
    assert.ok(outcome.applied && outcome.endedStreams === 1);
    assert.equal(upstream.streams[0]!.closed, false, 'kept for the answer it owes');
    await run({ gateway, upstream, alice, a, id });
  } finally {
    for (const s of opened) s.close();
    await gateway.close(200);
    await upstream.close();
  }
}

describe('review-review21: an HTTP+SSE stream a reload keeps for its owed answers', () => {
  it("holds: the client's answer to the upstream's elicitation reaches it, so the owed call ends and the stream with it", async () => {
    // (A kept stream that refused its session's POSTs, as one build of this session did, refused this
    // answer too: the tool waited for it, the owed answer never came, and the stream stayed for good.)
    await keptSession(async ({ upstream, alice, a, id }) => {
      const ask = { jsonrpc: '2.0', id: 'el-1', method: 'elicitation/create', params: { message: 'sure?' } };
      a.up.res.write(messageEvent(ask));
      const asked = await a.stream.next(3000);
      assert.equal((JSON.parse(asked.data) as { method: string }).method, 'elicitation/create');
      const arrived = upstream.nextPost();
      const reply = await postAs(alice.key, a.endpoint, {
        jsonrpc: '2.0',
        id: 'el-1',
        result: { action: 'accept', content: {} },
      });
      assert.equal(reply.status, 202, await reply.text());
      assert.deepEqual(((await arrived) as { id: string }).id, 'el-1');
      // The tool, answered, ends; the stream delivers its answer and ends.
      a.up.res.write(answer(id));
      const event = await a.stream.next(3000);
      assert.deepEqual((JSON.parse(event.data) as { result?: unknown }).result, {
        content: [{ type: 'text', text: 'ran' }],
      });
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });

  it('holds: a client cancels the owed call whose answer never came, and the stream ends', async () => {
    // (What an SDK client sends when its request times out: the stream owes that call nothing more.)
    await keptSession(async ({ upstream, alice, a }) => {
      const arrived = upstream.nextPost();
      const cancel = await postAs(alice.key, a.endpoint, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 1, reason: 'timed out' },
      });
      assert.equal(cancel.status, 202, await cancel.text());
      assert.equal(((await arrived) as { method: string }).method, 'notifications/cancelled');
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });

  it('holds: a shutdown during the wait ends the kept stream at its grace, the owed call answered with its error', async () => {
    await keptSession(async ({ gateway, upstream, a }) => {
      const started = performance.now();
      const closed = gateway.close(600);
      const event = await a.stream.next(5000);
      const message = JSON.parse(event.data) as { id: number; error?: { code: number } };
      assert.equal(message.id, 1);
      assert.equal(message.error?.code, -32003);
      await closed;
      assert.ok(performance.now() - started < 5000, 'no hang');
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });

  it("hole: a stream kept for its owed answers outlived the key's new, earlier expiry failed before: still open", async () => {
    // failed before: the stream's expiry watch kept the key's old expiry (none here), so a reload
    // that set the key to expire in a second left the session's stream open, and its client kept
    // using it, for as long as it went on owing answers. Now it ends at the new expiry, as a stream
    // opened under the new config would; its session takes requests until then.
    const upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S1`);
    const alice: KeySpec = { label: 'alice', key: newKey() };
    const conf = (a: KeySpec) =>
      reviewConfig(upstream.url, [a], '  transport: sse\n', { secret: SECRET, resources: [] });
    const gateway = await startTestGateway(conf(alice));
    const opened: OpenedStream[] = [];
    try {
      const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);
      const a = await open(alice.key);
      await forwarded(alice.key, a.endpoint, call);
      const expires = new Date(Date.now() + 1500).toISOString();
      const outcome = await gateway.runtime.reload(
        parseConfigText(conf({ ...alice, expires }), {}, Date.now()).config!,
      );
      assert.ok(outcome.applied && outcome.endedStreams === 1);
      // Still usable meanwhile: a second call is accepted and forwarded.
      await forwarded(alice.key, a.endpoint, { ...call, id: 2 });
      const started = Date.now();
      const errors: number[] = [];
      for (let i = 0; i < 2; i++) {
        const event = await a.stream.next(5000);
        const message = JSON.parse(event.data) as { id: number; error?: { code: number } };
        assert.ok(message.error !== undefined, event.data);
        errors.push(message.id);
      }
      assert.deepEqual(errors.sort(), [1, 2], 'each owed call gets an error');
      assert.ok(Date.now() - started < 4000);
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
      const get = await waitFor(
        () => gateway.auditLines.find((l) => l.http_method === 'GET'),
        3000,
        'its line',
      );
      assert.equal(get.reason, 'ERR_STREAM_EXPIRED');
    } finally {
      for (const s of opened) s.close();
      await gateway.close(200);
      await upstream.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The relay's send watch and tail pump (send-watch.ts, tail-pump.ts), split out of relay.ts.
// ---------------------------------------------------------------------------------------------

const LARGE = 6 * 1024 * 1024;

interface Relayed {
  readonly relay: Relay;
  readonly res: ServerResponse;
  stalls: number;
  done: (Error | undefined)[];
}

/**
 * A front server whose one request is relayed from an origin answering a JSON body of `size`
 * bytes, held and rewritten (as a filtered list is), under a send_timeout of `sendTimeoutMs`.
 */
async function relayFront(size: number, sendTimeoutMs: number, budget: BufferBudget) {
  const body = Buffer.alloc(size, 0x61);
  body.write('{"a":"', 0);
  body.write('"}', size - 2);
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': size });
    res.end(body);
  });
  const rewrite: ResponseRewrite = {
    json: (held) => Buffer.from(held),
    sse: () => {
      throw new Error('not an SSE test');
    },
  };
  const head = createResponseHead({ pass: [], warn: () => {}, now: () => 0 });
  const keepalive = new KeepaliveWheel(1000);
  let relayed: Relayed | undefined;
  const front = createServer((_req, res) => {
    const state: Relayed = {
      relay: undefined as unknown as Relay,
      res,
      stalls: 0,
      done: [],
    };
    const relay = new Relay(res, { keepalive, head, budget, sendTimeoutMs }, rewrite, {
      onStart: () => {},
      onBytes: () => {},
      onDone: (error) => state.done.push(error),
      onStalled: () => state.stalls++,
    });
    (state as { relay: Relay }).relay = relay;
    res.on('close', () => relay.abort(new Error('client closed')));
    relayed = state;
    origin.pool.dispatch({ path: '/', method: 'GET', headers: [] }, relay);
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const port = (front.address() as AddressInfo).port;
  return {
    port,
    relayed: () => relayed,
    async close() {
      front.closeAllConnections();
      front.close();
      await origin.close();
    },
  };
}

/** A raw client of `port` that sends one GET and reads nothing until told. */
async function rawGet(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  socket.pause();
  socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
  return socket;
}

/** The parts of a ServerResponse the tail pump and the send watch use: each write fills the socket. */
class FakeResponse extends EventEmitter {
  destroyed = false;
  writableEnded = false;
  writableFinished = false;
  writableNeedDrain = false;
  writableLength = 0;
  cork(): void {}
  uncork(): void {}
  write(chunk: Buffer): boolean {
    this.writableLength += chunk.length;
    this.writableNeedDrain = true;
    return false;
  }
  end(): void {
    this.writableEnded = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  /** The client took everything written so far. */
  drain(): void {
    this.writableLength = 0;
    this.writableNeedDrain = false;
    this.emit('drain');
  }
}

describe('review-review21: the send watch and the tail pump', () => {
  it('holds: a small answer taken at once makes no send watch, and leaves no listener behind', async () => {
    const budget = new BufferBudget(64 << 20);
    const front = await relayFront(300, 500, budget);
    try {
      const res = await fetch(`http://127.0.0.1:${front.port}/`);
      assert.equal((await res.text()).length, 300);
      const r = front.relayed()!;
      await waitFor(() => r.done.length === 1 || undefined, 2000, 'done');
      assert.equal((r.relay as unknown as { watch?: unknown }).watch, undefined, 'no watch on the hot path');
      assert.equal(r.res.listenerCount('drain'), 0);
      assert.equal(budget.used, 0);
    } finally {
      await front.close();
    }
  });

  it('holds: a large held body goes to a slow reader whole, the timer cleared at each drain, one drain listener at a time', (t) => {
    // On a fake response with mocked timers: real sockets on loopback hold megabytes in the kernel,
    // and a reader reading on may make no room for a send_timeout while the receiving side waits to
    // reopen its window, whichever relay wrote.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const res = new FakeResponse();
    let stalls = 0;
    let pumped = 0;
    let sent = 0;
    const stall: StallOwner = {
      stalled: () => void stalls++,
      cut: () => void stalls++,
    };
    const watch = new SendWatch(res as unknown as ServerResponse, 400, stall);
    const pieces = [Buffer.alloc(TAIL_SLICE * 3 + 10), Buffer.alloc(TAIL_SLICE * 2)];
    const pump = new TailPump(res as unknown as ServerResponse, pieces, {
      sent: (n) => void (sent += n),
      sendWatch: () => watch,
      pumped: () => void pumped++,
      watchEnd: () => watch.ended(),
    });
    pump.pump();
    let maxDrain = 0;
    // A slice taken every 300 ms: never a send_timeout (400 ms) without a drain, 1.8 s in all.
    for (let i = 0; i < 6 && !res.writableEnded; i++) {
      maxDrain = Math.max(maxDrain, res.listenerCount('drain'));
      t.mock.timers.tick(300);
      res.drain();
    }
    assert.equal(stalls, 0, 'a reader that reads on is not cut');
    assert.ok(res.writableEnded, 'ended after the last slice');
    assert.equal(sent, TAIL_SLICE * 5 + 10);
    assert.equal(pumped, 1, 'told once');
    assert.ok(maxDrain <= 1, `${maxDrain} drain listeners at once`);
    assert.equal(res.listenerCount('drain'), 0);
    // Ended with bytes not taken: none taken for a period cuts it; all taken ('finish') clears it.
    t.mock.timers.tick(400);
    assert.equal(stalls, 1, 'the end watch cut the client that took nothing more');
  });

  it('holds: a large held body to a client that reads nothing is cut once after send_timeout, its reservation given back', async () => {
    const budget = new BufferBudget(64 << 20);
    const front = await relayFront(LARGE, 300, budget);
    try {
      const socket = await rawGet(front.port);
      const closed = once(socket, 'close');
      const started = performance.now();
      await waitFor(() => front.relayed()?.res.destroyed || undefined, 5000, 'cut');
      const took = performance.now() - started;
      const r = front.relayed()!;
      assert.equal(r.stalls, 1);
      assert.ok(took >= 250, `cut after ${took} ms`);
      assert.equal(budget.used, 0);
      socket.destroy();
      await closed;
    } finally {
      await front.close();
    }
  });
});
