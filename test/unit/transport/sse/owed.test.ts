/**
 * What an HTTP+SSE GET stream owes at shutdown (src/transport/sse/owed.ts): the requests of POSTs
 * its upstream accepted, each forgotten as its answer passes, the rest answered with the error.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_OWED, OwedAnswers } from '../../../../src/transport/sse/owed.ts';
import { GatewayError } from '../../../../src/jsonrpc/errors.ts';
import type { JsonRpcId } from '../../../../src/jsonrpc/message.ts';
import type { Untagged } from '../../../../src/integrity/request-tag.ts';

const SHUTDOWN = new GatewayError('ERR_SHUTTING_DOWN');
/** A tag whose last 16 characters (its MAC) are `mac`. */
const tagOf = (mac: string) => `g1nXYZ.n1.${mac.padStart(16, 'm')}`;
const macOf = (mac: string) => mac.padStart(16, 'm');
const tags = (...pairs: [string, JsonRpcId][]) =>
  new Map<string, Untagged>(pairs.map(([mac, clientId]) => [tagOf(mac), { clientId, plan: 'none' }]));
const ids = (events: Buffer[]) =>
  events.map((e) => (JSON.parse(/^data: (.*)$/m.exec(e.toString())![1]!) as { id: JsonRpcId }).id);

describe('OwedAnswers', () => {
  it('owes what was accepted until its answer passes, and answers the rest with the error', () => {
    const owed = new OwedAnswers();
    owed.accepted(tags(['a', 1], ['b', 'two'], ['c', 3]));
    owed.answered(macOf('b'));
    assert.equal(owed.size, 2);
    const events = owed.errors(SHUTDOWN);
    assert.deepEqual(ids(events), [1, 3]);
    assert.equal(
      events[0]!.toString(),
      'event: message\ndata: {"jsonrpc":"2.0","id":1,"error":{"code":-32003,"message":"gateway is shutting down"}}\n\n',
    );
    assert.equal(owed.size, 0);
    assert.deepEqual(owed.errors(SHUTDOWN), []);
  });

  it('a POST of its session still open keeps it unsettled until it closes and its answer passes', async () => {
    const owed = new OwedAnswers();
    owed.entered();
    let settled = 0;
    assert.equal(
      owed.whenSettled(() => settled++),
      true,
    );
    owed.accepted(tags(['a', 1]));
    owed.left();
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, 0);
    owed.answered(macOf('a'));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, 1);
  });

  it('an answer that passed before its POST was accepted is not owed again', () => {
    const owed = new OwedAnswers();
    owed.answered(macOf('a'));
    owed.accepted(tags(['a', 1]));
    assert.equal(owed.size, 0);
  });

  it('tells once, after the answer that settles it, and not when it owes nothing already', async () => {
    const owed = new OwedAnswers();
    assert.equal(
      owed.whenSettled(() => assert.fail('owes nothing')),
      false,
    );
    owed.accepted(tags(['a', 1], ['b', 2]));
    let told = 0;
    assert.equal(
      owed.whenSettled(() => told++),
      true,
    );
    owed.answered(macOf('a'));
    owed.answered(macOf('b'));
    assert.equal(told, 0, 'not from inside the rewriter');
    await new Promise((r) => setImmediate(r));
    assert.equal(told, 1);
  });

  it('is bounded: the oldest owed go first, and an id longer than cancellations remember is not held', () => {
    const owed = new OwedAnswers();
    owed.accepted(
      new Map([
        ...Array.from(
          { length: MAX_OWED + 5 },
          (_, i) => [tagOf(`t${i}`), { clientId: i, plan: 'none' as const }] as const,
        ),
      ]),
    );
    assert.equal(owed.size, MAX_OWED);
    assert.equal(ids(owed.errors(SHUTDOWN))[0], 5);
    owed.accepted(tags(['long', 'x'.repeat(10_000)]));
    assert.equal(owed.size, 0);
  });
});
