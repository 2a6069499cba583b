import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyCounter } from '../../../src/ratelimit/key-counter.ts';
import { compileLimits, inFlightDefault } from '../../../src/ratelimit/policy.ts';

describe('requests in flight per key (max_in_flight)', () => {
  it('gives each key its own slots, and a slot back when its request leaves', () => {
    const counter = new KeyCounter();
    assert.equal(counter.enter('a', 2), true);
    assert.equal(counter.enter('a', 2), true);
    assert.equal(counter.enter('a', 2), false);
    assert.equal(counter.enter('b', 2), true, 'another key is not counted against a');
    counter.leave('a');
    assert.equal(counter.of('a'), 1);
    assert.equal(counter.enter('a', 2), true);
    counter.leave('a');
    counter.leave('a');
    counter.leave('b');
    assert.equal(counter.of('a'), 0);
    assert.equal(counter.of('b'), 0);
  });

  it('counts every key together too', () => {
    const counter = new KeyCounter();
    assert.equal(counter.enter('a', 2), true);
    assert.equal(counter.enter('b', 2), true);
    assert.equal(counter.enter('b', 2), true);
    assert.equal(counter.enter('b', 2), false, 'a refusal takes nothing');
    assert.equal(counter.total, 3);
    counter.leave('b');
    counter.leave('a');
    assert.equal(counter.total, 1);
  });

  it('defaults to a quarter of upstream.connections, at least one; a key or the defaults may set it', () => {
    assert.equal(inFlightDefault(256), 64);
    assert.equal(inFlightDefault(8), 2);
    assert.equal(inFlightDefault(2), 1);
    const defaults = { capacity: 10, refill_per_second: 1, max_streams: 3 };
    assert.equal(compileLimits('key:a', { ...defaults, max_in_flight: 5 }).maxInFlight, 5);
    assert.equal(
      compileLimits('key:a', { ...defaults, max_in_flight: 5 }, { max_in_flight: 9 }).maxInFlight,
      9,
    );
  });
});
