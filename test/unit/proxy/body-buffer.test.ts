/** Holding bodies: small ones share Node's pool without sharing bytes; the budget counts what each asked for. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { BodyBuffer, BufferBudget } from '../../../src/proxy/body-buffer.ts';

it('small bodies held at once keep their own bytes, and each reserves exactly its size', () => {
  const budget = new BufferBudget(1 << 20);
  const bodies: { held: BodyBuffer; text: string }[] = [];
  for (let i = 0; i < 200; i++) {
    const text = `{"jsonrpc":"2.0","id":${i},"method":"tools/call"}`.padEnd(100 + (i % 50), ' ');
    const held = new BodyBuffer(budget, 4096, text.length);
    // Two pushes, as a body split across two reads arrives.
    assert.equal(held.push(Buffer.from(text.slice(0, 10))), undefined);
    assert.equal(held.push(Buffer.from(text.slice(10))), undefined);
    bodies.push({ held, text });
  }
  assert.equal(
    budget.used,
    bodies.reduce((n, b) => n + b.text.length, 0),
  );
  // Releasing every other body leaves the rest as they were.
  for (let i = 0; i < bodies.length; i += 2) bodies[i]!.held.release();
  for (let i = 1; i < bodies.length; i += 2)
    assert.equal(bodies[i]!.held.bytes().toString(), bodies[i]!.text);
  for (let i = 1; i < bodies.length; i += 2) bodies[i]!.held.release();
  assert.equal(budget.used, 0);
});

it('a body without a Content-Length grows from 4 KiB in buffers of its own and is refused past the budget', () => {
  const budget = new BufferBudget(5000);
  const held = new BodyBuffer(budget, 1 << 20);
  assert.equal(held.push(Buffer.alloc(100, 0x61)), undefined);
  assert.equal(budget.used, 4096);
  assert.equal(held.push(Buffer.alloc(5000, 0x62)), 'over-budget');
  assert.equal(held.bytes().toString(), 'a'.repeat(100));
  held.release();
  assert.equal(budget.used, 0);
});

it('an announced body holds nothing of the budget until its bytes arrive, then about what arrived', () => {
  const MIB = 1 << 20;
  const budget = new BufferBudget(64 * MIB);
  const announced = Array.from({ length: 10 }, () => new BodyBuffer(budget, 4 * MIB, 4 * MIB));
  assert.equal(budget.used, 0, 'announced, nothing sent');
  const held = announced[0]!;
  assert.equal(held.push(Buffer.alloc(1)), undefined);
  assert.equal(budget.used, 4096);
  let sent = 1;
  for (const size of [64 * 1024, 512 * 1024, MIB]) {
    assert.equal(held.push(Buffer.alloc(size - sent, 0x61)), undefined);
    sent = size;
    assert.ok(budget.used >= sent && budget.used <= 2 * sent, `${budget.used} reserved for ${sent} bytes`);
  }
  assert.equal(held.push(Buffer.alloc(4 * MIB - sent, 0x62)), undefined);
  assert.equal(budget.used, 4 * MIB, 'never more than announced');
  assert.equal(held.bytes().length, 4 * MIB);
  for (const b of announced) b.release();
  assert.equal(budget.used, 0);
});

/** A budget with `room` bytes left, as a key's share near its end looks to one body. */
function tightBudget(room: number): BufferBudget {
  const budget = new BufferBudget(64 << 20);
  assert.ok(budget.tryReserve(64 * (1 << 20) - room));
  return budget;
}

it('failed before: a body near its share trickled one byte per chunk is copied a logarithmic number of times, not once per chunk', () => {
  // The share leaves room for the body and no more than a few bytes: every chunk's geometric
  // reservation fails and the exact one succeeds. The buffer must still grow geometrically.
  const budget = tightBudget(90_000 + 5_000);
  const held = new BodyBuffer(budget, 1 << 20);
  assert.equal(held.push(Buffer.alloc(90_000, 0x61)), undefined);
  const buffers = new Set<ArrayBufferLike>([held.bytes().buffer]);
  for (let i = 0; i < 3_000; i++) {
    assert.equal(held.push(Buffer.of(0x62)), undefined);
    buffers.add(held.bytes().buffer);
  }
  assert.equal(held.length, 93_000);
  assert.ok(buffers.size <= 3, `${buffers.size} buffers for 3,000 one-byte chunks`);
  assert.equal(held.bytes().toString('latin1'), 'a'.repeat(90_000) + 'b'.repeat(3_000));
  held.release();
});

it('failed before: a body past its share with a large Content-Length gets a buffer about the size it reserved, not the announced size', () => {
  const MIB = 1 << 20;
  const budget = tightBudget(40);
  const held = new BodyBuffer(budget, 64 * MIB, 40 * MIB);
  assert.equal(held.push(Buffer.of(0x7b)), undefined);
  // At most Node's shared pool slab it was cut from (before: 40 MiB of its own).
  const allocated = (): number => held.bytes().buffer.byteLength;
  assert.ok(allocated() <= Buffer.poolSize, `${allocated()} bytes allocated for 1 reserved`);
  for (let i = 0; i < 39; i++) assert.equal(held.push(Buffer.of(0x20)), undefined);
  assert.equal(held.push(Buffer.of(0x7d)), 'over-budget');
  assert.ok(allocated() <= Buffer.poolSize, `${allocated()} bytes allocated for 40 reserved`);
  held.release();
});

it('an announced body whose first chunk reserves a fair part of it is sized once from its Content-Length', () => {
  const MIB = 1 << 20;
  const budget = new BufferBudget(64 * MIB);
  const held = new BodyBuffer(budget, 4 * MIB, 300 * 1024);
  assert.equal(held.push(Buffer.alloc(64 * 1024, 0x61)), undefined);
  const first = held.bytes().buffer;
  assert.equal(first.byteLength >= 300 * 1024, true);
  for (let sent = 64 * 1024; sent < 300 * 1024; sent += 16 * 1024)
    assert.equal(held.push(Buffer.alloc(Math.min(16 * 1024, 300 * 1024 - sent), 0x62)), undefined);
  assert.equal(held.bytes().buffer, first, 'never moved');
  assert.equal(budget.used, 300 * 1024);
  held.release();
});
