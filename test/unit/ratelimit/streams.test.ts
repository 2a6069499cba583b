import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createStreamCounter } from '../../../src/ratelimit/streams.ts';

describe('open stream counter', () => {
  it('admits up to max streams per key, and a released slot can be taken again', () => {
    const streams = createStreamCounter();
    const a1 = streams.acquire('key:a', 2);
    const a2 = streams.acquire('key:a', 2);
    assert.ok(a1 && a2);
    assert.equal(streams.acquire('key:a', 2), undefined);
    assert.ok(streams.acquire('key:b', 2), 'another key has its own slots');
    assert.equal(streams.open('key:a'), 2);
    assert.equal(streams.total, 3);
    a1();
    assert.equal(streams.open('key:a'), 1);
    assert.ok(streams.acquire('key:a', 2));
  });

  it('release is idempotent (close and error may both fire)', () => {
    const streams = createStreamCounter();
    const release = streams.acquire('key:a', 1);
    assert.ok(release);
    release();
    release();
    assert.equal(streams.open('key:a'), 0);
    assert.equal(streams.total, 0);
    const again = streams.acquire('key:a', 1);
    assert.ok(again);
    release(); // the stale release must not free the new stream's slot
    assert.equal(streams.acquire('key:a', 1), undefined);
  });

  it('max_streams 0 refuses every stream', () => {
    assert.equal(createStreamCounter().acquire('key:a', 0), undefined);
  });
});
