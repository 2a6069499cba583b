/**
 * The head of an SSE response goes out with its first event when the two arrive together (one
 * socket write, not two: a write on loopback costs the writer the receiver's TCP work too), and on
 * its own at the next tick when no event came with it (the client sees the stream open at once).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'undici';
import { Relay } from '../../../src/proxy/relay.ts';
import { KeepaliveWheel } from '../../../src/proxy/keepalive.ts';
import { createResponseHead } from '../../../src/proxy/response-headers.ts';
import { startOrigin } from '../../helpers/relay-harness.ts';
import type { Origin } from '../../helpers/relay-harness.ts';

type Writes = string[];

/** Records each write the socket makes (one entry per write or writev, its bytes as text). */
function spyWrites(socket: Socket): Writes {
  const writes: Writes = [];
  const s = socket as Socket & { _writeGeneric(writev: boolean, data: unknown, ...rest: unknown[]): unknown };
  const original = s._writeGeneric.bind(s);
  s._writeGeneric = (writev, data, ...rest) => {
    const pieces = writev
      ? (data as { chunk: Buffer | string }[]).map((d) => d.chunk)
      : [data as Buffer | string];
    writes.push(pieces.map((p) => p.toString()).join(''));
    return original(writev, data, ...rest);
  };
  return writes;
}

describe('Relay: the head of an SSE response', () => {
  let origin: Origin;
  let front: Server;
  let frontUrl: string;
  /** What the origin writes after its head, and the origin's response (to end it). */
  let first = '';
  let upstreamRes: ServerResponse | undefined;
  let writes: Writes = [];
  const keepalive = new KeepaliveWheel(60_000);
  const head = createResponseHead({ pass: [], warn: () => {}, now: () => 0 });

  before(async () => {
    origin = await startOrigin((_req, res) => {
      upstreamRes = res;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // The head and the first event in one write, as servers send an event at once.
      if (first !== '') res.write(first);
      else res.flushHeaders();
    });
    front = createServer((_req, res) => {
      writes = spyWrites(res.socket!);
      const relay = new Relay(res, { keepalive, head }, undefined, {
        onStart: () => {},
        onBytes: () => {},
        onDone: () => {},
      });
      res.on('close', () => relay.abort(new Error('client closed the request')));
      origin.pool.dispatch({ path: '/', method: 'GET', headers: [] }, relay);
    });
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}/`;
  });
  after(async () => {
    front.closeAllConnections();
    front.close();
    await origin.close();
  });

  it('goes out in one write with the first event that came with it', async () => {
    first = 'event: message\ndata: {"a":1}\n\n';
    const res = await request(frontUrl);
    const reader = res.body[Symbol.asyncIterator]();
    const chunk = (await reader.next()).value as Buffer;
    assert.equal(chunk.toString(), first);
    assert.equal(writes.length, 1, `one write: ${JSON.stringify(writes)}`);
    assert.match(
      writes[0]!,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n[0-9a-f]+\r\nevent: message\ndata: \{"a":1\}\n\n\r\n$/,
    );
    upstreamRes!.end();
    while (!(await reader.next()).done);
  });

  it('goes out on its own when no event came with it, before any event exists', async () => {
    first = '';
    const res = await request(frontUrl);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(writes.length, 1);
    assert.match(writes[0]!, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n$/);
    upstreamRes!.write('data: later\n\n');
    const reader = res.body[Symbol.asyncIterator]();
    assert.equal(((await reader.next()).value as Buffer).toString(), 'data: later\n\n');
    upstreamRes!.end();
    while (!(await reader.next()).done);
  });
});
