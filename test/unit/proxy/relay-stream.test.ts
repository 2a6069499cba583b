/**
 * A long-lived SSE response through the relay, with real sockets on both sides (a node:http
 * upstream, undici's Pool, a node:http front): what an idle stream holds and its keepalives.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { Relay } from '../../../src/proxy/relay.ts';
import { KeepaliveWheel } from '../../../src/proxy/keepalive.ts';
import { createResponseHead } from '../../../src/proxy/response-headers.ts';
import { waitFor } from '../../helpers/net.ts';

const KEEPALIVE_MS = 100;

interface Stream {
  /** The relay's controller, as undici handed it over. */
  controller: Dispatcher.DispatchController | undefined;
  /** What the client received so far. */
  text: string;
  res: IncomingMessage;
}

describe('Relay, idle SSE streams', () => {
  let upstream: Server;
  let front: Server;
  let pool: Pool;
  let frontUrl: string;
  const wheel = new KeepaliveWheel(KEEPALIVE_MS);
  const head = createResponseHead({ pass: [], warn: () => {}, now: () => performance.now() });
  /** Upstream responses still open, in arrival order. */
  const upstreamOpen = new Set<ServerResponse>();
  const controllers: (Dispatcher.DispatchController | undefined)[] = [];

  before(async () => {
    upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.flushHeaders();
      upstreamOpen.add(res);
      res.on('close', () => upstreamOpen.delete(res));
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    pool = new Pool(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, { bodyTimeout: 0 });
    front = createServer((req, res) => {
      const relay = new Relay(res, { keepalive: wheel, head }, undefined, {
        onStart() {},
        onBytes() {},
        onDone() {},
      });
      const index = controllers.push(undefined) - 1;
      res.on('close', () => relay.abort(new Error('client closed the request')));
      // The relay's own methods, with the controller kept where the test can see it.
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (c, context) => {
          controllers[index] = c;
          relay.onRequestStart(c);
          void context;
        },
        onResponseStart: (c, status, headers) => relay.onResponseStart(c, status, headers),
        onResponseData: (c, chunk) => relay.onResponseData(c, chunk),
        onResponseEnd: () => relay.onResponseEnd(),
        onResponseError: (c, error) => relay.onResponseError(c, error),
      };
      pool.dispatch({ path: '/mcp', method: 'GET', headers: { accept: 'text/event-stream' } }, handler);
    });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}/mcp`;
  });

  after(async () => {
    front.closeAllConnections();
    front.close();
    await pool.destroy();
    upstream.closeAllConnections();
    upstream.close();
  });

  async function openStream(): Promise<Stream> {
    const index = controllers.length;
    const req = httpRequest(frontUrl, { headers: { accept: 'text/event-stream' }, agent: false });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    const stream: Stream = { controller: controllers[index], text: '', res };
    res.setEncoding('utf8');
    res.on('data', (d: string) => (stream.text += d));
    res.on('error', () => {});
    return stream;
  }

  const keepalives = (s: Stream) => s.text.split(': keepalive\n\n').length - 1;

  it('does not keep the raw header buffers (views into a socket read) for the stream', async () => {
    const s = await openStream();
    try {
      assert.ok(s.controller !== undefined);
      assert.equal(s.controller.rawHeaders, null);
    } finally {
      s.res.destroy();
      await waitFor(() => wheel.size === 0, 2000, 'the stream to leave the keepalive wheel');
    }
  });

  it('sends each idle stream its keepalives, and stops for one the client closed', async () => {
    const a = await openStream();
    const b = await openStream();
    assert.equal(wheel.size, 2);
    await waitFor(() => keepalives(a) >= 2 && keepalives(b) >= 2, 3000, 'keepalives on both streams');
    a.res.destroy();
    // The closed stream leaves the wheel, and its upstream request is cancelled.
    await waitFor(() => wheel.size === 1, 2000, 'the closed stream to leave the keepalive wheel');
    await waitFor(() => upstreamOpen.size === 1, 2000, 'the upstream side of the closed stream to close');
    const seen = keepalives(b);
    await waitFor(() => keepalives(b) >= seen + 2, 3000, 'more keepalives on the open stream');
    // Events pass between keepalives, whole.
    [...upstreamOpen][0]!.write('data: {"jsonrpc":"2.0","method":"x"}\n\n');
    await waitFor(() => b.text.includes('data: {"jsonrpc":"2.0","method":"x"}\n\n'), 2000, 'the event');
    for (const block of b.text.split('\n\n').slice(0, -1))
      assert.ok(block === ': keepalive' || block.startsWith('data: '), block);
    b.res.destroy();
    await waitFor(() => wheel.size === 0 && upstreamOpen.size === 0, 2000, 'both streams to be gone');
  });
});
