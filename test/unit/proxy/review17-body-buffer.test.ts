/**
 * Review of c9ccf71 (BodyBuffer: geometric growth whatever was reserved, sized from Content-Length
 * only within AHEAD x the reservation or when a spare fits). "failed before:" tests failed on
 * c9ccf71 and pass since the spare follows the same rule as a fresh buffer; "holds:" tests pass on
 * attacks that were correctly handled (and fail if the guard goes).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { createServer as createHttpServer } from 'node:http';
import { connect } from 'node:net';
import { createReadBody } from '../../../src/pipeline/read-body.ts';
import { BodyBuffer, BufferBudget, dropSpares } from '../../../src/proxy/body-buffer.ts';
import type { Budget } from '../../../src/proxy/body-buffer.ts';
import { KeyShares } from '../../../src/proxy/key-shares.ts';
import type { ResponseRewrite } from '../../../src/proxy/relay.ts';
import { relayOnce } from '../../helpers/relay-harness.ts';
import type { Origin } from '../../helpers/relay-harness.ts';

const KIB = 1024;
const MIB = 1 << 20;

/**
 * Runs `fn` counting the buffers body-buffer.ts allocates (Buffer.allocUnsafe / allocUnsafeSlow
 * called from it) and their bytes: the bytes a body is copied into, moves included.
 */
async function countAllocs(fn: () => unknown): Promise<{ allocs: number; bytes: number }> {
  const unsafe = Buffer.allocUnsafe;
  const slow = Buffer.allocUnsafeSlow;
  let allocs = 0;
  let bytes = 0;
  const fromBodyBuffer = (): boolean => (new Error().stack ?? '').includes('body-buffer.ts');
  Buffer.allocUnsafe = ((n: number) => {
    if (fromBodyBuffer()) {
      allocs++;
      bytes += n;
    }
    return unsafe(n);
  }) as typeof Buffer.allocUnsafe;
  Buffer.allocUnsafeSlow = ((n: number) => {
    if (fromBodyBuffer()) {
      allocs++;
      bytes += n;
    }
    return slow(n);
  }) as typeof Buffer.allocUnsafeSlow;
  try {
    await fn();
  } finally {
    Buffer.allocUnsafe = unsafe;
    Buffer.allocUnsafeSlow = slow;
  }
  return { allocs, bytes };
}

/** Leaves one spare of `size` bytes (written whole, so its pages are resident), as a held list body does. */
function leaveSpare(budget: Budget, size: number): void {
  const producer = new BodyBuffer(budget, 64 * MIB, size);
  for (let sent = 0; sent < size; sent += 64 * KIB)
    assert.equal(producer.push(Buffer.alloc(Math.min(64 * KIB, size - sent), 0x5a)), undefined);
  producer.release(true);
}

describe('review17: BodyBuffer after c9ccf71', () => {
  // ---------------------------------------------------------------------------------------------
  // Holes
  // ---------------------------------------------------------------------------------------------

  it('failed before: a body that gets more bytes than its Content-Length announced is moved into a new buffer on every chunk (quadratic copying)', async () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    // Announced 16 bytes; 3,000 one-byte chunks arrive (capacityFor caps growth at `expected`, so
    // past it every chunk gets a buffer of exactly `needed` bytes).
    const held = new BodyBuffer(budget, MIB, 16);
    const { allocs, bytes } = await countAllocs(() => {
      for (let i = 0; i < 3_000; i++) assert.equal(held.push(Buffer.of(0x61 + (i % 26))), undefined);
    });
    assert.equal(held.length, 3_000);
    held.release();
    assert.ok(
      allocs <= 20,
      `${allocs} buffers (${bytes} bytes allocated and copied into) for a 3,000-byte body`,
    );
  });

  it('holds: an upstream list response announcing Content-Length: 1 and sending 20,000 chunked bytes never reaches the held buffer (undici refuses the framing before the body)', async () => {
    dropSpares();
    // The one way found for a held body to get more bytes than announced would be an upstream whose
    // framing disagrees with its Content-Length: undici refuses it before any body byte.
    const CHUNKS = 20_000;
    const head =
      'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n';
    const body = Buffer.from('1\r\nx\r\n'.repeat(CHUNKS) + '0\r\n\r\n');
    const server = createNetServer((socket) => {
      socket.once('data', () => {
        socket.write(head);
        socket.end(body);
      });
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const origin: Origin = {
      pool,
      async close() {
        await pool.destroy();
        server.close();
      },
    };
    const budget = new BufferBudget(256 * MIB);
    const rewrite: ResponseRewrite = {
      json: (b) => Buffer.from(b),
      sse: () => {
        throw new Error('not an SSE test');
      },
    };
    let chunks = 0;
    let errors: (Error | undefined)[] = [];
    const { allocs, bytes } = await countAllocs(async () => {
      ({ errors } = await relayOnce(origin, '/', rewrite, budget, () => {}, { add: () => void chunks++ }));
    });
    await origin.close();
    assert.equal(budget.used, 0, 'everything given back');
    assert.equal(chunks, 0, `${chunks} upstream body chunks reached the relay`);
    assert.ok(allocs <= 64, `${allocs} held buffers, ${bytes} bytes`);
    assert.equal((errors[0] as { code?: string } | undefined)?.code, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH');
  });

  it('holds: a request announcing Content-Length: 1 with a chunked body of more bytes never reaches readBody (Node answers 400)', async () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    const readBody = createReadBody(4 * MIB, budget);
    let handled = 0;
    let read = -1;
    const server = createHttpServer((req, res) => {
      handled++;
      readBody(req, res).then(
        (b) => {
          read = b.length;
          res.end('ok');
        },
        () => res.end('refused'),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const statuses: string[] = [];
    for (const framing of [
      'Content-Length: 1\r\nTransfer-Encoding: chunked',
      'Transfer-Encoding: chunked\r\nContent-Length: 1',
    ]) {
      const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(`POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
      socket.write('1\r\nx\r\n'.repeat(5_000) + '0\r\n\r\n');
      let out = '';
      socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
      socket.on('error', () => {});
      await once(socket, 'close');
      statuses.push(out.split('\r\n')[0] ?? '');
    }
    server.close();
    assert.deepEqual(statuses, ['HTTP/1.1 400 Bad Request', 'HTTP/1.1 400 Bad Request']);
    assert.equal(handled, 0, `the handler ran ${handled} times (read ${read} bytes)`);
    assert.equal(budget.used, 0);
  });

  it('failed before: bodies that take an idle spare hold megabytes for a 4 KiB reservation; the memory held for bodies exceeds max_buffered_bytes', () => {
    dropSpares();
    // max_buffered_bytes 16 MiB, a key's share a quarter of it.
    const budget = new BufferBudget(16 * MIB);
    const shares = new KeyShares(budget, 4 * MIB);
    const SPARE = MIB;
    const stalled: BodyBuffer[] = [];
    let held = 0;
    for (let round = 0; round < 32; round++) {
      // A list response of 1 MiB is held, filtered and given back with reuse (relay.ts reuseHeld).
      leaveSpare(budget, SPARE);
      // The attacker's request: Content-Length 1 MiB (under max_body_bytes), one byte sent, then
      // nothing (the body is held until the request ends).
      const body = new BodyBuffer(shares.for('attacker'), 4 * MIB, SPARE);
      assert.equal(body.push(Buffer.of(0x7b)), undefined);
      stalled.push(body);
      held += body.bytes().buffer.byteLength;
    }
    const reserved = shares.of('attacker');
    const budgetUsed = budget.used;
    for (const body of stalled) body.release();
    dropSpares();
    assert.equal(budget.used, 0);
    assert.ok(
      held <= budget.limit && held <= 16 * reserved,
      `32 stalled bodies hold ${held / MIB} MiB of resident buffers (written whole by the list bodies before) ` +
        `for ${reserved} bytes reserved by the key (budget used ${budgetUsed}, limit ${budget.limit})`,
    );
  });

  // ---------------------------------------------------------------------------------------------
  // Attacks that held
  // ---------------------------------------------------------------------------------------------

  it('holds: one-byte chunks from a key whose share has room only for the exact reservation grow the buffer geometrically', async () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    const shares = new KeyShares(budget, 16 * MIB);
    // Another body of the same key leaves it 3,000 bytes of its share: every geometric reservation fails.
    const other = new BodyBuffer(shares.for('k'), 16 * MIB);
    assert.equal(other.push(Buffer.alloc(16 * MIB - 3_000)), undefined);
    const held = new BodyBuffer(shares.for('k'), MIB, 500_000);
    const { allocs } = await countAllocs(() => {
      for (let i = 0; i < 3_000; i++) assert.equal(held.push(Buffer.of(0x41 + (i % 26))), undefined);
    });
    assert.equal(held.push(Buffer.of(0x21)), 'over-budget');
    assert.equal(held.length, 3_000);
    assert.equal(shares.of('k'), 16 * MIB);
    assert.ok(allocs <= 14, `${allocs} buffers for 3,000 one-byte chunks`);
    const expected = Array.from({ length: 3_000 }, (_, i) => String.fromCharCode(0x41 + (i % 26))).join('');
    assert.equal(held.bytes().toString('latin1'), expected);
    held.release();
    other.release();
    assert.equal(shares.of('k'), 0);
    assert.equal(budget.used, 0);
  });

  it('holds: reservations alternating between success and failure still move the buffer a logarithmic number of times', async () => {
    dropSpares();
    let calls = 0;
    let used = 0;
    const flaky: Budget = {
      tryReserve(n) {
        calls++;
        if (calls % 2 === 0) return false;
        used += n;
        return true;
      },
      release(n) {
        used -= n;
      },
    };
    for (const expected of [undefined, 30_000, 1 << 19]) {
      const held = new BodyBuffer(flaky, MIB, expected);
      const { allocs } = await countAllocs(() => {
        for (let i = 0; i < 20_000; i++) assert.equal(held.push(Buffer.of(0x61)), undefined);
      });
      assert.ok(allocs <= 20, `${allocs} buffers for 20,000 one-byte chunks (expected ${expected})`);
      held.release();
    }
    assert.equal(used, 0);
  });

  it('holds: Content-Length at 16x the first reservation is sized once; one byte above grows geometrically within 16x of what is reserved', async () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    const at = new BodyBuffer(budget, 4 * MIB, 16 * 4096);
    const a = await countAllocs(() => assert.equal(at.push(Buffer.of(1)), undefined));
    assert.equal(budget.used, 4096);
    assert.equal(a.allocs, 1);
    assert.equal(a.bytes, 16 * 4096, 'sized once from Content-Length');
    at.release();

    const above = new BodyBuffer(budget, 4 * MIB, 16 * 4096 + 1);
    const b = await countAllocs(() => {
      assert.equal(above.push(Buffer.of(1)), undefined);
      assert.equal(above.bytes().buffer.byteLength, 4096, 'not the announced size');
      for (let i = 1; i < 16 * 4096 + 1; i += 1000)
        assert.equal(above.push(Buffer.alloc(Math.min(1000, 16 * 4096 + 1 - i), 2)), undefined);
    });
    assert.equal(above.length, 16 * 4096 + 1);
    assert.ok(b.allocs <= 6, `${b.allocs} buffers`);
    assert.ok(b.bytes <= 3 * (16 * 4096 + 1), `${b.bytes} bytes allocated`);
    above.release();
    assert.equal(budget.used, 0);
  });

  it('holds: what a body newly allocates stays within 16x what it reserves (announced sizes from 1 byte to 64 MiB, 1-byte first chunk)', async () => {
    dropSpares();
    const budget = new BufferBudget(1 << 30);
    for (let expected = 1; expected <= 64 * MIB; expected *= 3) {
      const held = new BodyBuffer(budget, 64 * MIB, expected);
      const { bytes } = await countAllocs(() => assert.equal(held.push(Buffer.of(1)), undefined));
      const own = bytes < 4096 ? 0 : bytes; // pooled slices share Node's slab
      assert.ok(
        own <= 16 * budget.used,
        `${own} allocated for ${budget.used} reserved (announced ${expected})`,
      );
      held.release();
    }
    // Past a share: only the exact byte can be reserved.
    const tight = new BufferBudget(64 * MIB);
    assert.ok(tight.tryReserve(64 * MIB - 10));
    const held = new BodyBuffer(tight, 64 * MIB, 40 * MIB);
    const { bytes } = await countAllocs(() => {
      for (let i = 0; i < 10; i++) assert.equal(held.push(Buffer.of(1)), undefined);
    });
    assert.ok(bytes <= 64, `${bytes} allocated for 10 reserved`);
    held.release();
  });

  it('holds: the POOLED_BYTES boundary: 4095-byte bodies are pool slices that keep their own bytes, 4096-byte ones get buffers of their own', () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    const bodies: BodyBuffer[] = [];
    for (let i = 0; i < 6; i++) {
      const size = i % 2 === 0 ? 4095 : 4096;
      const held = new BodyBuffer(budget, MIB, size);
      assert.equal(held.push(Buffer.alloc(size - 1, 0x30 + i)), undefined);
      assert.equal(held.push(Buffer.of(0x30 + i)), undefined);
      bodies.push(held);
    }
    for (let i = 0; i < 6; i++) {
      const b = bodies[i]!.bytes();
      assert.equal(b.length, i % 2 === 0 ? 4095 : 4096);
      assert.ok(
        b.every((x) => x === 0x30 + i),
        `body ${i} intact`,
      );
      if (i % 2 === 1) assert.equal(b.buffer.byteLength, 4096, 'a buffer of its own');
    }
    for (const b of bodies) b.release();
    assert.equal(budget.used, 0);
  });

  it('holds: a body that took a spare (a subarray of a larger buffer) and then got more bytes than announced keeps every byte, and sees none of the old body', () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    leaveSpare(budget, 600 * KIB); // the spare is 600 KiB of 0x5a
    const held = new BodyBuffer(budget, 4 * MIB, 400 * KIB);
    const parts: Buffer[] = [];
    for (let i = 0; i < 70; i++) {
      const part = Buffer.alloc(7 * KIB + i, 0x61 + (i % 25)); // a..y, never the spare's 0x5a
      parts.push(part);
      assert.equal(held.push(part), undefined);
    }
    const want = Buffer.concat(parts);
    assert.ok(want.length > 400 * KIB);
    assert.ok(held.bytes().equals(want), 'bytes across the spare and its successor');
    assert.equal(held.bytes().indexOf(0x5a), -1);
    held.release(true);
    assert.equal(budget.used, 0);
    dropSpares();
  });

  it('holds: random chunkings, announced lengths (short, exact, long, none), tight shares and garbage spares never corrupt bytes or leak reservations', () => {
    dropSpares();
    let seed = 17;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const budget = new BufferBudget(32 * MIB);
    const shares = new KeyShares(budget, 8 * MIB);
    for (let round = 0; round < 300; round++) {
      if (round % 7 === 0) leaveSpare(budget, SPARE_SIZES[rand(SPARE_SIZES.length)]!);
      const key = `k${rand(3)}`;
      // Another body of this key takes part of its share.
      const other = new BodyBuffer(shares.for(key), 8 * MIB);
      const pre = rand(8 * MIB);
      const otherOk = other.push(Buffer.alloc(pre)) === undefined;
      const size = 1 + rand(rand(2) === 0 ? 5_000 : 900 * KIB);
      const kind = rand(4);
      const expected =
        kind === 0 ? undefined : kind === 1 ? size : kind === 2 ? Math.max(1, size >> 1) : size * 2;
      const held = new BodyBuffer(shares.for(key), 4 * MIB, expected);
      const parts: Buffer[] = [];
      let got = 0;
      let refused = false;
      while (got < size) {
        const n = Math.min(size - got, 1 + rand(rand(3) === 0 ? 64 * KIB : 300));
        const part = Buffer.alloc(n);
        for (let j = 0; j < n; j++) part[j] = (got + j) * 31 + round;
        if (held.push(part) !== undefined) {
          refused = true;
          break;
        }
        parts.push(part);
        got += n;
      }
      assert.ok(
        held.bytes().equals(Buffer.concat(parts)),
        `round ${round}: bytes intact (refused ${refused})`,
      );
      assert.ok(shares.of(key) <= 8 * MIB);
      held.release(rand(2) === 0);
      if (otherOk) other.release(rand(2) === 0);
      else other.release();
      assert.equal(shares.of(key), 0, `round ${round}: the key's share given back`);
      assert.equal(budget.used, 0, `round ${round}: the budget given back`);
    }
    dropSpares();
  });

  it('holds: refusals leak nothing of a key share, and a key at its share leaves the rest of the budget to others', () => {
    dropSpares();
    const budget = new BufferBudget(16 * MIB);
    const shares = new KeyShares(budget, 4 * MIB);
    const mine: BodyBuffer[] = [];
    let refusedAt = -1;
    for (let i = 0; i < 100; i++) {
      const held = new BodyBuffer(shares.for('greedy'), 4 * MIB, 4 * MIB);
      const refusal = held.push(Buffer.alloc(300 * KIB));
      if (refusal !== undefined) {
        assert.equal(refusal, 'over-budget');
        held.release();
        refusedAt = i;
        break;
      }
      mine.push(held);
    }
    assert.ok(refusedAt > 0);
    assert.ok(shares.of('greedy') <= 4 * MIB, `${shares.of('greedy')} held by one key`);
    const before = shares.of('greedy');
    // Refused pushes (too large, over budget) take nothing more.
    const big = new BodyBuffer(shares.for('greedy'), 64 * KIB);
    assert.equal(big.push(Buffer.alloc(64 * KIB + 1)), 'too-large');
    assert.equal(shares.of('greedy'), before);
    big.release();
    // Another key still gets a whole share.
    const fair = new BodyBuffer(shares.for('fair'), 4 * MIB, 4 * MIB);
    assert.equal(fair.push(Buffer.alloc(4 * MIB)), undefined);
    fair.release();
    for (const b of mine) {
      b.release();
      b.release();
    }
    assert.equal(shares.of('greedy'), 0);
    assert.equal(budget.used, 0);
  });

  it('holds: a buffer released with reuse twice is handed to one body only', () => {
    dropSpares();
    const budget = new BufferBudget(64 * MIB);
    const first = new BodyBuffer(budget, 4 * MIB, 300 * KIB);
    assert.equal(first.push(Buffer.alloc(300 * KIB, 1)), undefined);
    first.release(true);
    first.release(true);
    const a = new BodyBuffer(budget, 4 * MIB, 300 * KIB);
    const b = new BodyBuffer(budget, 4 * MIB, 300 * KIB);
    assert.equal(a.push(Buffer.alloc(300 * KIB, 0x61)), undefined);
    assert.equal(b.push(Buffer.alloc(300 * KIB, 0x62)), undefined);
    assert.notEqual(a.bytes().buffer, b.bytes().buffer);
    assert.ok(a.bytes().every((x) => x === 0x61));
    assert.ok(b.bytes().every((x) => x === 0x62));
    a.release();
    b.release();
    assert.equal(budget.used, 0);
  });
});

const SPARE_SIZES = [256 * KIB, 300 * KIB, 700 * KIB, 2 * MIB];
