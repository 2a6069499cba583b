/**
 * The pending-cancellation map (src/integrity/cancels.ts): which tag a client's request id was
 * forwarded under, per principal and upstream session.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PendingTags, SWEEP_AFTER } from '../../../src/integrity/cancels.ts';

describe('pending cancellations', () => {
  it('find the tag for the same principal, session and client id only', () => {
    const pending = new PendingTags();
    pending.remember('k:a', 's1', 5, 'T5');
    pending.remember('k:a', 's1', '5', 'T5s');
    assert.equal(pending.tagFor('k:a', 's1', 5), 'T5');
    assert.equal(pending.tagFor('k:a', 's1', '5'), 'T5s');
    assert.equal(pending.tagFor('k:a', 's2', 5), undefined);
    assert.equal(pending.tagFor('k:a', undefined, 5), undefined);
    assert.equal(pending.tagFor('k:b', 's1', 5), undefined);
  });

  it('keep principals apart whatever their binding ids hold (an OAuth subject with a line break)', () => {
    const pending = new PendingTags();
    // Principal "x\n" in session "s", request 5, against principal "x" with no session cancelling
    // the string id "\nn5": once spelled as the same key, one could name the other's request.
    pending.remember('o:x\n', 's', 5, 'theirs');
    assert.equal(pending.tagFor('o:x', undefined, '\nn5'), undefined);
    assert.equal(pending.tagFor('o:x\n', 's', 5), 'theirs');
  });

  it("drop a principal's own oldest past its share: one key's flood never pushes another's out", () => {
    const pending = new PendingTags(100, 3);
    pending.remember('k:b', 's', 7, 'B7');
    for (let i = 0; i < 50; i++) pending.remember('k:a', 's', i, `A${i}`);
    assert.equal(pending.tagFor('k:b', 's', 7), 'B7');
    assert.equal(pending.size, 4);
    assert.deepEqual(
      [46, 47, 48, 49].map((i) => pending.tagFor('k:a', 's', i)),
      [undefined, 'A47', 'A48', 'A49'],
    );
    // Forgotten and replaced entries give their place back.
    const entry = pending.remember('k:a', 's', 60, 'A60');
    pending.forget(entry, 'A60');
    pending.remember('k:a', 's', 49, 'A49b');
    assert.equal(pending.size, 3);
    assert.equal(pending.tagFor('k:a', 's', 47), undefined);
    assert.equal(pending.tagFor('k:a', 's', 48), 'A48');
    assert.equal(pending.tagFor('k:a', 's', 49), 'A49b');
    assert.equal(pending.tagFor('k:b', 's', 7), 'B7');
  });

  it('forget an answered request only under the tag it was remembered with; drop the oldest past the bound', () => {
    const pending = new PendingTags(2);
    const key = pending.remember('k:a', undefined, 1, 'T1');
    pending.forget(key, 'other');
    assert.equal(pending.tagFor('k:a', undefined, 1), 'T1');
    pending.forget(key, 'T1');
    assert.equal(pending.size, 0);
    // Remembered again under a newer tag (the client reused its id): the old answer forgets nothing.
    pending.remember('k:a', undefined, 1, 'T1');
    pending.forget(pending.remember('k:a', undefined, 1, 'T1b'), 'T1');
    assert.equal(pending.tagFor('k:a', undefined, 1), 'T1b');
    pending.remember('k:a', undefined, 1, 'T1');
    pending.remember('k:a', undefined, 2, 'T2');
    pending.remember('k:a', undefined, 3, 'T3');
    assert.equal(pending.size, 2);
    assert.equal(pending.tagFor('k:a', undefined, 1), undefined);
    assert.equal(pending.tagFor('k:a', undefined, 3), 'T3');
  });

  it('an answered entry forgets nothing once a newer request took its place, across emptied scopes', () => {
    const pending = new PendingTags();
    const a = pending.remember('k:a', 's1', 1, 'TA');
    const b = pending.remember('k:a', 's1', 2, 'TB');
    pending.forget(a, 'TA');
    pending.forget(b, 'TB');
    assert.equal(pending.size, 0);
    // The session's emptied map is used again: the old entry is still not in it.
    const c = pending.remember('k:a', 's1', 1, 'TA');
    pending.forget(a, 'TA');
    assert.equal(pending.tagFor('k:a', 's1', 1), 'TA');
    assert.equal(pending.size, 1);
    pending.forget(c, 'TA');
    assert.equal(pending.tagFor('k:a', 's1', 1), undefined);
    // Dropping the oldest past the bound takes it out of its maps too.
    const bounded = new PendingTags(1);
    bounded.remember('k:a', 's1', 1, 'T1');
    const second = bounded.remember('k:b', undefined, 1, 'T2');
    assert.equal(bounded.tagFor('k:a', 's1', 1), undefined);
    assert.equal(bounded.tagFor('k:b', undefined, 1), 'T2');
    bounded.forget(second, 'T2');
    assert.equal(bounded.size, 0);
  });

  it("keep a session's emptied map for its next request, and never more than SWEEP_AFTER emptied ones", () => {
    const pending = new PendingTags();
    for (let i = 0; i < 10; i++) pending.forget(pending.remember('k:a', 's1', i, `T${i}`), `T${i}`);
    assert.deepEqual(pending.held(), { scopes: 1, principals: 1 });
    // Requests still waiting, in sessions and principals of their own, across the sweeps below.
    const waiting = Array.from({ length: 10 }, (_, i) => pending.remember(`k:w${i}`, `w${i}`, i, `W${i}`));
    // Three sweeps' worth of sessions and principals, each used for one request and left empty.
    let most = { scopes: 0, principals: 0 };
    for (let i = 0; i < 3 * SWEEP_AFTER; i++) {
      pending.forget(pending.remember(`k:${i % 7}`, `s${i}`, 1, 'T'), 'T');
      pending.forget(pending.remember(`k:p${i}`, undefined, 1, 'P'), 'P');
      const held = pending.held();
      most = {
        scopes: Math.max(most.scopes, held.scopes),
        principals: Math.max(most.principals, held.principals),
      };
    }
    // Each sweep comes after SWEEP_AFTER maps or lists were left empty: the 10 waiting, and at most
    // that many empty ones, are held at any time.
    assert.ok(most.scopes <= 10 + SWEEP_AFTER, `scopes held: ${most.scopes}`);
    assert.ok(most.principals <= 10 + SWEEP_AFTER, `principals held: ${most.principals}`);
    assert.ok(most.scopes > 10 + SWEEP_AFTER / 4, 'emptied maps are kept between sweeps');
    waiting.forEach((_, i) => assert.equal(pending.tagFor(`k:w${i}`, `w${i}`, i), `W${i}`));
    assert.equal(pending.size, 10);
    waiting.forEach((entry, i) => pending.forget(entry, `W${i}`));
    assert.equal(pending.size, 0);
    waiting.forEach((_, i) => assert.equal(pending.tagFor(`k:w${i}`, `w${i}`, i), undefined));
  });
});
