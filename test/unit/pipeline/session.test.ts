/** The session step: bound ids verified once and remembered, never for another principal. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createSessionBinder } from '../../../src/auth/session-binding.ts';
import { createSessionStep } from '../../../src/pipeline/session.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

const ctxFor = (bindingId: string) =>
  ({ principal: { bindingId }, session: undefined, reason: undefined }) as unknown as RequestContext;

it('answers a remembered id like a verified one, and never lets another principal or a forgery through', () => {
  let macs = 0;
  const binder = createSessionBinder(Buffer.alloc(32, 7));
  const counting = {
    wrap: binder.wrap,
    unwrap: (id: string, who: string) => {
      macs++;
      return binder.unwrap(id, who);
    },
  };
  const step = createSessionStep(counting);
  const alice = ctxFor('k:alice');
  const clientId = step.outbound(alice, 'upstream-1');
  assert.equal(step.inbound(ctxFor('k:alice'), clientId), 'upstream-1');
  const again = ctxFor('k:alice');
  assert.equal(step.inbound(again, clientId), 'upstream-1');
  assert.equal(macs, 1, 'the second request was answered from the cache');
  assert.equal(again.session, alice.session, 'the same audit tag');
  for (const [who, id] of [
    ['k:bob', clientId],
    ['k:alice', clientId.slice(0, -1) + (clientId.endsWith('A') ? 'B' : 'A')],
    ['k:alice', 'upstream-1'],
  ] as const) {
    const ctx = ctxFor(who);
    assert.throws(
      () => step.inbound(ctx, id),
      (err) => isGatewayError(err) && err.code === 'ERR_SESSION_NOT_FOUND',
    );
    assert.equal(ctx.reason, 'ERR_SESSION_NOT_FOUND');
  }
  // Another principal's refused attempt with the id neither took nor spoilt the remembered one;
  // and asking again as that principal is verified again (and refused), never answered from it.
  const before = macs;
  assert.equal(step.inbound(ctxFor('k:alice'), clientId), 'upstream-1');
  assert.equal(macs, before, 'still answered from the cache');
  assert.throws(() => step.inbound(ctxFor('k:bob'), clientId));
  assert.equal(macs, before + 1, 'the other principal is verified, not answered from the cache');
  assert.throws(() => step.inbound({ ...ctxFor('k:bob'), principal: undefined } as RequestContext, clientId));
});

it('answers an upstream that names its session on every response without an HMAC per response', () => {
  let wraps = 0;
  const binder = createSessionBinder(Buffer.alloc(32, 9));
  const step = createSessionStep({
    wrap: (id: string, who: string) => {
      wraps++;
      return binder.wrap(id, who);
    },
    unwrap: binder.unwrap,
  });
  const first = ctxFor('k:alice');
  const clientId = step.outbound(first, 'upstream-1');
  assert.equal(wraps, 1);
  // Later responses of the session name it again: the same id and audit tag, no new HMAC.
  const later = ctxFor('k:alice');
  assert.equal(step.outbound(later, 'upstream-1'), clientId);
  assert.equal(later.session, first.session);
  assert.equal(wraps, 1);
  // Another principal, or another upstream id, gets its own wrap (never the cached one).
  const bob = ctxFor('k:bob');
  const bobs = step.outbound(bob, 'upstream-1');
  assert.equal(bobs, binder.wrap('upstream-1', 'k:bob'));
  assert.notEqual(bobs, clientId);
  assert.equal(step.outbound(ctxFor('k:alice'), 'upstream-2'), binder.wrap('upstream-2', 'k:alice'));
  assert.equal(wraps, 3);
  // A session id the client presented and the step verified is known too (a gateway restarted
  // since it issued it): its echo costs no HMAC either.
  const other = createSessionStep({
    wrap: (id: string, who: string) => {
      wraps++;
      return binder.wrap(id, who);
    },
    unwrap: binder.unwrap,
  });
  const presented = binder.wrap('upstream-3', 'k:alice');
  assert.equal(other.inbound(ctxFor('k:alice'), presented), 'upstream-3');
  assert.equal(other.outbound(ctxFor('k:alice'), 'upstream-3'), presented);
  assert.equal(wraps, 3);
});
