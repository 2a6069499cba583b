/**
 * The young sweep (src/server/young-sweep.ts): one scavenge, at the next turn, once every
 * `everyBytes` of upstream body have been relayed; the relay tells it every chunk, held or streamed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { PerformanceEntry } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { createYoungSweep, EVERY_BYTES, YoungSweep } from '../../../src/server/young-sweep.ts';
import { BufferBudget } from '../../../src/proxy/body-buffer.ts';
import type { ResponseRewrite } from '../../../src/proxy/relay.ts';
import { relayOnce, startOrigin } from '../../helpers/relay-harness.ts';

/** A sweep whose collections are counted and whose scheduled runs wait for `runAll`. */
function counted(everyBytes: number) {
  let collections = 0;
  const queued: (() => void)[] = [];
  const sweep = new YoungSweep({
    collect: () => void collections++,
    schedule: (fn) => void queued.push(fn),
    everyBytes,
  });
  return {
    sweep,
    queued,
    collections: () => collections,
    runAll: () => queued.splice(0).forEach((fn) => fn()),
  };
}

describe('young sweep', () => {
  it('schedules one collection when the bytes reach the mark, and counts again from zero after it', () => {
    const s = counted(1000);
    s.sweep.add(600);
    s.sweep.add(399);
    assert.equal(s.queued.length, 0, 'below the mark: nothing scheduled');
    s.sweep.add(1);
    s.sweep.add(5000);
    s.sweep.add(5000);
    assert.equal(s.queued.length, 1, 'one collection scheduled however far past the mark');
    assert.equal(s.collections(), 0, 'nothing collected before the scheduled turn');
    s.runAll();
    assert.equal(s.collections(), 1);
    assert.equal(s.sweep.sweeps, 1);
    s.sweep.add(999);
    assert.equal(s.queued.length, 0, 'the bytes before the collection were forgotten');
    s.sweep.add(1);
    assert.equal(s.queued.length, 1);
  });

  it('refuses a mark that is not a positive integer', () => {
    for (const everyBytes of [0, -1, 1.5, Number.NaN]) assert.throws(() => counted(everyBytes), TypeError);
  });

  it("runs V8's young-generation collection, not a full one", async () => {
    const sweep = createYoungSweep(1024);
    assert.ok(sweep, 'this runtime offers the collection');
    const kinds: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries() as (PerformanceEntry & { detail: { kind: number } })[])
        kinds.push(entry.detail.kind);
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      sweep.add(1024);
      assert.equal(sweep.sweeps, 0, 'not in the turn that crossed the mark');
      await turn();
      assert.equal(sweep.sweeps, 1);
      // The observer is told after the collection, at a later turn.
      for (let k = 0; k < 20 && !kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR); k++) await turn();
      assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `collections seen: ${kinds.join(',')}`);
      assert.ok(!kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'no mark-compact');
    } finally {
      observer.disconnect();
    }
    assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'no gc function left on the global');
  });

  it('is told the size of every upstream chunk the relay reads, for a held list and a streamed body', async () => {
    const BODY = `{"jsonrpc":"2.0","id":1,"result":{"text":"${'x'.repeat(EVERY_BYTES)}"}}`;
    const origin = await startOrigin((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
      res.end(BODY);
    });
    try {
      const identity: ResponseRewrite = {
        json: (body) => Buffer.from(body),
        sse: () => ({ push: (c) => [c], end: () => [] }),
      };
      for (const rewrite of [identity, undefined]) {
        const s = counted(EVERY_BYTES);
        const told: number[] = [];
        const sweep = { add: (n: number) => (told.push(n), s.sweep.add(n)) };
        const { text } = await relayOnce(
          origin,
          '/',
          rewrite as ResponseRewrite,
          new BufferBudget(64 << 20),
          () => {},
          sweep,
        );
        assert.equal(text, BODY);
        assert.ok(told.length > 1, 'a large body arrives in several chunks');
        assert.equal(
          told.reduce((a, b) => a + b, 0),
          Buffer.byteLength(BODY),
          'every byte counted once',
        );
        assert.equal(s.queued.length, 1, 'the body crossed the mark once');
      }
    } finally {
      await origin.close();
    }
  });
});
