import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { KeepaliveWheel, SLICE, TICKS } from '../../../src/proxy/keepalive.ts';
import type { KeepaliveStream } from '../../../src/proxy/keepalive.ts';

/** A stream that records the times (mocked clock) it was asked for a keepalive. */
function stream(onKeepalive?: () => void): KeepaliveStream & { readonly at: number[] } {
  const at: number[] = [];
  return {
    keepaliveSlot: -1,
    keepaliveTick: 0,
    at,
    keepalive() {
      at.push(Date.now());
      onKeepalive?.();
    },
  };
}

/** Moves the mocked clock in small steps, so each keepalive sees the time its tick fired at. */
function advance(ms: number): void {
  for (let t = 0; t < ms; t += 50) mock.timers.tick(50);
}

describe('KeepaliveWheel', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  it('asks each idle stream for a keepalive once per period, never later than the period', () => {
    const wheel = new KeepaliveWheel(1000);
    const a = stream();
    wheel.add(a);
    advance(100);
    const b = stream();
    wheel.add(b);
    advance(3000);
    // A keepalive comes at most 1000 ms after the last one (or the start), at least 750 ms after.
    assert.deepEqual(a.at, [1000, 2000, 3000]);
    assert.deepEqual(b.at, [1000, 2000, 3000]);
    for (const s of [a, b]) {
      let last = s === a ? 0 : 100;
      for (const t of s.at) {
        assert.ok(t - last <= 1000 && t - last >= 1000 * ((TICKS - 1) / TICKS), `${last} -> ${t}`);
        last = t;
      }
    }
  });

  it('skips a stream that wrote within the period', () => {
    const wheel = new KeepaliveWheel(1000);
    const busy = stream();
    const idle = stream();
    wheel.add(busy);
    wheel.add(idle);
    for (let t = 0; t < 3000; t += 250) {
      advance(250);
      wheel.touch(busy);
    }
    assert.deepEqual(busy.at, []);
    assert.deepEqual(idle.at, [1000, 2000, 3000]);
    // Once it stops writing, its own period starts from its last write.
    advance(1000);
    assert.deepEqual(busy.at, [4000]);
  });

  it('stops asking a stream once it is removed, and stops its timer when none is left', () => {
    const wheel = new KeepaliveWheel(1000);
    const a = stream();
    const b = stream();
    const c = stream();
    for (const s of [a, b, c]) wheel.add(s);
    advance(1000);
    wheel.remove(a);
    wheel.remove(a); // idempotent
    advance(1000);
    wheel.remove(c);
    advance(1000);
    assert.deepEqual(a.at, [1000]);
    assert.deepEqual(b.at, [1000, 2000, 3000]);
    assert.deepEqual(c.at, [1000, 2000]);
    assert.equal(wheel.size, 1);
    wheel.remove(b);
    assert.equal(wheel.size, 0);
    assert.equal(a.keepaliveSlot, -1);
    // No timer is left: a new stream starts a new one, on a fresh period.
    advance(5000);
    assert.deepEqual(b.at, [1000, 2000, 3000]);
    wheel.add(a);
    advance(1000);
    assert.deepEqual(a.at, [1000, 9000]);
  });

  it('copes with a stream that leaves, or takes another out, during its keepalive', () => {
    const wheel = new KeepaliveWheel(1000);
    const streams: ReturnType<typeof stream>[] = [];
    // The first one removes itself, the second removes the fourth, others stay.
    streams.push(stream(() => wheel.remove(streams[0]!)));
    streams.push(stream(() => wheel.remove(streams[3]!)));
    streams.push(stream());
    streams.push(stream());
    streams.push(stream());
    for (const s of streams) wheel.add(s);
    advance(2000);
    assert.deepEqual(
      streams.map((s) => s.at),
      [[1000], [1000, 2000], [1000, 2000], [1000], [1000, 2000]],
    );
    assert.equal(wheel.size, 3);
  });

  it('writes at most SLICE keepalives per turn of the event loop, the rest at the next turns', async () => {
    const wheel = new KeepaliveWheel(1000);
    const streams = Array.from({ length: SLICE * 2 + 10 }, () => stream());
    for (const s of streams) wheel.add(s);
    advance(1000);
    const asked = () => streams.filter((s) => s.at.length > 0).length;
    assert.equal(asked(), SLICE, 'one slice in the tick itself');
    // One that leaves while it waits for its slice gets none.
    const leaving = streams.find((s) => s.at.length === 0)!;
    wheel.remove(leaving);
    await turn();
    assert.equal(asked(), SLICE * 2, 'the next slice at the next turn');
    await turn();
    await turn();
    assert.equal(asked(), streams.length - 1, 'every other due stream asked once');
    assert.deepEqual(leaving.at, []);
    assert.ok(streams.every((s) => s.at.length <= 1));
    // The next period starts over with the streams still there.
    advance(1000);
    for (let k = 0; k < 4; k++) await turn();
    assert.equal(streams.filter((s) => s.at.length === 2).length, streams.length - 1);
  });

  it('refuses a period that is not positive', () => {
    assert.throws(() => new KeepaliveWheel(0), TypeError);
  });
});
