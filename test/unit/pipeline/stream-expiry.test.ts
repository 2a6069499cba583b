/**
 * ExpiryWatch against a mocked clock (timers and Date together): the one thing here that cannot be
 * real is a credential expiring weeks from now.
 */
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { ExpiryWatch } from '../../../src/pipeline/stream-expiry.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import type { Principal } from '../../../src/auth/principal.ts';

const T0 = Date.parse('2027-03-01T00:00:00Z');
const DAY = 86_400_000;

function contextFor(kind: Principal['kind'], expiresAt: number | undefined): RequestContext {
  const principal = { kind, name: 'p', bindingId: 'b', expiresAt } as unknown as Principal;
  return { principal, reason: undefined } as unknown as RequestContext;
}

describe('ExpiryWatch', () => {
  /** A stream's watch at its principal's expiry, as the handler starts one. */
  const watchOf = (ctx: RequestContext, now: () => number, end: (ctx: RequestContext) => void) =>
    ExpiryWatch.start(ctx, ctx.principal?.expiresAt, now, end);

  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: T0 }));
  afterEach(() => mock.timers.reset());

  it('ends the stream when the key expires, not a millisecond before, with its own reason', () => {
    const ctx = contextFor('key', T0 + 5000);
    const ended: RequestContext[] = [];
    const watch = watchOf(ctx, Date.now, (c) => ended.push(c));
    assert.ok(watch);
    mock.timers.tick(4999);
    assert.equal(ended.length, 0);
    mock.timers.tick(1);
    assert.deepEqual(ended, [ctx]);
    assert.equal(ctx.reason, 'ERR_STREAM_EXPIRED');
  });

  it("ends an OAuth subject's stream the same way, and keeps a reason already set", () => {
    const oauth = contextFor('oauth', T0 + 10);
    watchOf(oauth, Date.now, () => {});
    mock.timers.tick(10);
    assert.equal(oauth.reason, 'ERR_STREAM_EXPIRED');
    const set = contextFor('key', T0 + 10);
    set.reason = 'ERR_CLIENT_STALLED';
    watchOf(set, Date.now, () => {});
    mock.timers.tick(10);
    assert.equal(set.reason, 'ERR_CLIENT_STALLED');
  });

  it("waits past setTimeout's longest delay (about 24.8 days) for an expiry 60 days away", () => {
    const ctx = contextFor('key', T0 + 60 * DAY);
    let ended = 0;
    watchOf(ctx, Date.now, () => ended++);
    mock.timers.tick(25 * DAY);
    mock.timers.tick(25 * DAY);
    assert.equal(ended, 0);
    mock.timers.tick(10 * DAY - 1);
    assert.equal(ended, 0);
    mock.timers.tick(1);
    assert.equal(ended, 1);
  });

  it('does nothing once cancelled (the stream closed first)', () => {
    let ended = 0;
    const watch = watchOf(contextFor('key', T0 + 1000), Date.now, () => ended++);
    watch?.cancel();
    mock.timers.tick(2000);
    assert.equal(ended, 0);
  });

  it('needs no timer for a principal that never expires, and ends at once one already expired', () => {
    assert.equal(
      watchOf(contextFor('key', undefined), Date.now, () => assert.fail('ended')),
      undefined,
    );
    let ended = 0;
    watchOf(contextFor('key', T0 - 1), Date.now, () => ended++);
    assert.equal(ended, 1);
  });
});
