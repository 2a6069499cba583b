import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EPSILON, level, take } from '../../../src/ratelimit/bucket.ts';
import type { BucketPolicy, BucketState } from '../../../src/ratelimit/bucket.ts';

/** Rates as users write them: whole, fractional, and "one a minute" style. */
const rate = fc.oneof(
  fc.integer({ min: 1, max: 50 }),
  fc.double({ min: 0.001, max: 20, noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: 1, max: 3600 }).map((n) => 1 / n),
  fc.constantFrom(0.0167, 0.5, 0.1, 0.3),
);
const policy = fc.record({ capacity: fc.integer({ min: 1, max: 100 }), refillPerSecond: rate });
/** Gaps between requests in ms, some zero (bursts), some long. */
const gaps = fc.array(
  fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 120_000 })),
  {
    minLength: 1,
    maxLength: 200,
  },
);

/** Runs a request history; returns the final state and time. */
function run(p: BucketPolicy, start: number, history: readonly number[], cost = 1) {
  let state: BucketState | undefined;
  let now = start;
  let admitted = 0;
  for (const gap of history) {
    now += gap;
    const r = take(state, p, now, cost);
    state = r.state;
    if (r.allowed) admitted += cost;
  }
  return { state, now, admitted };
}

describe('token bucket (pure)', () => {
  it('never admits more than capacity + elapsed × rate', () => {
    fc.assert(
      fc.property(
        policy,
        fc.integer({ min: 0, max: 1e12 }),
        gaps,
        fc.integer({ min: 1, max: 3 }),
        (p, start, history, cost) => {
          const first = start + (history[0] ?? 0);
          const { now, admitted } = run(p, start, history, cost);
          const bound = p.capacity + ((now - first) * p.refillPerSecond) / 1000;
          assert.ok(admitted <= bound + EPSILON, `admitted ${admitted} > bound ${bound}`);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('admits a full burst, then exactly as many as the refill allows over a steady stream', () => {
    fc.assert(
      // Rates that divide a second into whole milliseconds, so no refill is lost to a full bucket
      // between two ticks of this millisecond clock.
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.constantFrom(1, 2, 4, 5, 8, 10, 20, 25, 40, 50),
        (capacity, perSecond) => {
          const p = { capacity, refillPerSecond: perSecond };
          let state: BucketState | undefined;
          let admitted = 0;
          // Ten seconds of one request per millisecond.
          for (let t = 0; t <= 10_000; t++) {
            const r = take(state, p, t, 1);
            state = r.state;
            if (r.allowed) admitted++;
          }
          assert.equal(admitted, capacity + 10 * perSecond);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refills exactly to the token: one every 1/rate seconds, not a millisecond earlier', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3600 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 1e12 }),
        (n, capacity, t0) => {
          const p = { capacity, refillPerSecond: 1 / n };
          let state: BucketState | undefined;
          for (let i = 0; i < capacity; i++) state = take(state, p, t0, 1).state;
          const early = take(state, p, t0 + n * 1000 - 1, 1);
          assert.equal(early.allowed, false);
          assert.equal(early.retryAfterMs, 1);
          const onTime = take(state, p, t0 + n * 1000, 1);
          assert.equal(onTime.allowed, true);
          assert.equal(onTime.remaining, 0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('tells the exact wait: the cost passes after retryAfterMs and not one millisecond before', () => {
    fc.assert(
      fc.property(
        policy,
        fc.integer({ min: 0, max: 1e12 }),
        gaps,
        fc.integer({ min: 1, max: 3 }),
        (p, start, history, cost) => {
          fc.pre(cost <= p.capacity);
          const { state, now } = run(p, start, history, 1);
          const r = take(state, p, now, cost);
          if (r.allowed) {
            assert.equal(r.retryAfterMs, 0);
            return;
          }
          assert.ok(r.retryAfterMs >= 1 && Number.isInteger(r.retryAfterMs));
          assert.equal(take(state, p, now + r.retryAfterMs, cost).allowed, true, 'allowed at retryAfter');
          assert.equal(take(state, p, now + r.retryAfterMs - 1, cost).allowed, false, 'refused just before');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reports reset as the time to a full bucket', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 0, max: 1e12 }), gaps, (p, start, history) => {
        const { state, now } = run(p, start, history, 1);
        const r = take(state, p, now, 1);
        const full = level(r.state, p, now + r.resetMs);
        assert.ok(full >= p.capacity - EPSILON, `level ${full} after reset`);
        if (r.resetMs > 0) assert.ok(level(r.state, p, now + r.resetMs - 1) < p.capacity);
      }),
      { numRuns: 300 },
    );
  });

  it('one call a minute (0.0167/s): refused at 59,880 ms, allowed at 59,881 ms', () => {
    const p = { capacity: 1, refillPerSecond: 0.0167 };
    const first = take(undefined, p, 0, 1);
    assert.equal(first.allowed, true);
    assert.equal(first.remaining, 0);
    assert.equal(first.resetMs, 59_881);
    const second = take(first.state, p, 1, 1);
    assert.equal(second.allowed, false);
    assert.equal(second.retryAfterMs, 59_880);
    assert.equal(take(first.state, p, 59_880, 1).allowed, false);
    assert.equal(take(first.state, p, 59_881, 1).allowed, true);
  });

  it('a bucket that never refills (rate 0) is a quota: retry is Infinity', () => {
    const p = { capacity: 2, refillPerSecond: 0 };
    let r = take(undefined, p, 0, 1);
    r = take(r.state, p, 0, 1);
    assert.equal(r.allowed, true);
    assert.equal(r.resetMs, Infinity);
    const refused = take(r.state, p, 1e9, 1);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, Infinity);
  });

  it('a cost above capacity can never pass', () => {
    const r = take(undefined, { capacity: 3, refillPerSecond: 10 }, 0, 4);
    assert.equal(r.allowed, false);
    assert.equal(r.remaining, 3);
    assert.equal(r.retryAfterMs, Infinity);
  });

  it('a clock that steps back grants nothing and keeps the later stamp', () => {
    const p = { capacity: 2, refillPerSecond: 1 };
    let r = take(undefined, p, 10_000, 2);
    assert.equal(r.remaining, 0);
    r = take(r.state, p, 5_000, 1); // clock went back 5 s
    assert.equal(r.allowed, false);
    assert.equal(r.state.updatedMs, 10_000);
    assert.equal(take(r.state, p, 11_000, 1).allowed, true);
  });
});
