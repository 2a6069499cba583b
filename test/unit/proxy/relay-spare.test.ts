/**
 * A held list body's buffer is given back for the next one (proxy/body-buffer.ts spares) only when
 * nothing keeps a view of it: the relay reuses it when the rewrite returned bytes of their own, never
 * when the body it writes is the held buffer itself. A reused buffer shows only the new body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ResponseRewrite } from '../../../src/proxy/relay.ts';
import { BodyBuffer, BufferBudget, dropSpares } from '../../../src/proxy/body-buffer.ts';
import { relayOnce, startOrigin } from '../../helpers/relay-harness.ts';
import type { Origin } from '../../helpers/relay-harness.ts';

const SIZE = 300 * 1024;
const budget = new BufferBudget(64 << 20);

/** Drops every spare, so a test starts with none. */
function drainSpares(): void {
  dropSpares();
}

describe('body buffer spares', () => {
  it('hands a buffer given back with reuse to the next body of its size, holding only that body', () => {
    drainSpares();
    const first = new BodyBuffer(budget, SIZE * 2, SIZE);
    first.push(Buffer.alloc(SIZE, 0x61));
    const memory = first.bytes().buffer;
    first.release(true);
    // Its first bytes reserve a sixteenth of what it announces: the spare is taken at once.
    const head = '{"b":1}'.padEnd(Math.ceil((SIZE - 10) / 16), ' ');
    const next = new BodyBuffer(budget, SIZE * 2, SIZE - 10);
    next.push(Buffer.from(head));
    assert.equal(next.bytes().buffer, memory, 'the spare was taken');
    assert.equal(next.bytes().toString(), head);
    next.release();
    assert.equal(budget.used, 0);
  });

  it('never hands out a buffer released without reuse', () => {
    drainSpares();
    const first = new BodyBuffer(budget, SIZE * 2, SIZE);
    first.push(Buffer.alloc(SIZE, 0x61));
    const memory = first.bytes().buffer;
    first.release();
    const next = new BodyBuffer(budget, SIZE * 2, SIZE);
    next.push(Buffer.from('x'));
    assert.notEqual(next.bytes().buffer, memory);
    next.release();
  });
});

describe('relay: reuse of a held list body', () => {
  const BODY = `{"jsonrpc":"2.0","id":1,"result":{"text":"${'x'.repeat(SIZE)}"}}`;
  let origin: Origin;

  before(async () => {
    origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
      // In two parts: the body is copied into a held buffer, not read in place.
      res.write(BODY.slice(0, 1000));
      setTimeout(() => res.end(BODY.slice(1000)), 10);
    });
  });
  after(() => origin.close());

  /** Relays one response with `json`; returns what the client read and the held body's memory. */
  async function relayed(json: (body: Buffer) => Buffer) {
    let memory: ArrayBufferLike | undefined;
    const rewrite: ResponseRewrite = {
      json: (body) => {
        memory = body.buffer;
        return json(body);
      },
      sse: () => {
        throw new Error('not an SSE test');
      },
    };
    const { text } = await relayOnce(origin, '/', rewrite, budget);
    return { text, memory };
  }

  it('reuses the buffer when the rewrite returned a copy', async () => {
    drainSpares();
    const a = await relayed((body) => Buffer.from(body));
    const b = await relayed((body) => Buffer.from(body));
    assert.equal(a.text, BODY);
    assert.equal(b.text, BODY);
    assert.ok(
      a.memory !== undefined && b.memory === a.memory,
      'the second body was held in the first one’s buffer',
    );
    assert.equal(budget.used, 0);
  });

  it('does not reuse the buffer the client is sent (the rewrite returned a view of it)', async () => {
    drainSpares();
    const a = await relayed((body) => body.subarray(0));
    const b = await relayed((body) => body);
    assert.equal(a.text, BODY);
    assert.equal(b.text, BODY);
    assert.ok(a.memory !== undefined && b.memory !== a.memory, 'a buffer being written was not handed out');
    assert.equal(budget.used, 0);
  });
});
