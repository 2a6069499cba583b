/**
 * Sealed event ids: the client sees each upstream event id sealed for its key, and a Last-Event-ID
 * opens only for the key it was sealed for, unchanged (src/integrity/event-ids.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { answerDigest, createEventIds } from '../../../src/integrity/event-ids.ts';
import { inSession } from '../../../src/integrity/step.ts';

const ids = createEventIds(Buffer.alloc(32, 7));
const ALICE = 'k:alice';
const BOB = 'k:bob';

describe('sealed SSE event ids', () => {
  it('opens what it sealed, for the same key only', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (id) => {
        const sealed = ids.seal(ALICE, id);
        assert.equal(ids.open(ALICE, sealed), id);
        assert.equal(ids.open(BOB, sealed), undefined);
      }),
    );
  });

  it('keeps dots and the upstream id whole: the seal is the last 17 characters', () => {
    const sealed = ids.seal(ALICE, 'stream.7.a0');
    assert.match(sealed, /^stream\.7\.a0\.[A-Za-z0-9_-]{16}$/);
    assert.equal(ids.open(ALICE, sealed), 'stream.7.a0');
  });

  it('refuses the upstream id itself, a changed seal, a changed id, and short or odd input', () => {
    const sealed = ids.seal(ALICE, 'a0');
    const refused = [
      'a0',
      '',
      '.',
      sealed.slice(0, -1),
      `${sealed.slice(0, -1)}${sealed.endsWith('A') ? 'B' : 'A'}`,
      `b0${sealed.slice(2)}`,
      `${sealed}x`,
      sealed.replace('.', '_'),
    ];
    for (const presented of refused) assert.equal(ids.open(ALICE, presented), undefined, presented);
  });

  it('is keyed by the secret: another gateway secret opens none of these seals', () => {
    const other = createEventIds(Buffer.alloc(32, 8));
    assert.equal(other.open(ALICE, ids.seal(ALICE, 'a0')), undefined);
    assert.throws(() => createEventIds(Buffer.alloc(16)), /at least 32 bytes/);
  });

  describe("an initialize's stream: event ids that carry its answer to the GET resuming it", () => {
    const S1 = inSession(ALICE, 'up-1') as string;
    const S2 = inSession(ALICE, 'up-2') as string;
    const answer = answerDigest('g1nAAAA.n0.tag');

    it('opens on the session and key it was sealed for, with the answer; a plain seal carries none', () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (id) => {
          const opening = ids.sealOpening(S1, answer, id);
          assert.deepEqual(ids.resume(ALICE, S1, opening), { id, answer });
          assert.equal(ids.resume(ALICE, S2, opening), undefined);
          assert.equal(ids.resume(BOB, inSession(BOB, 'up-1'), opening), undefined);
          assert.equal(ids.resume(ALICE, undefined, opening), undefined);
          assert.equal(ids.open(ALICE, opening), undefined);
          assert.deepEqual(ids.resume(ALICE, S1, ids.seal(ALICE, id)), { id });
        }),
      );
    });

    it('an upstream id shaped like an opening, sealed plain, opens as that id and takes no answer', () => {
      const id = `p0.${answer}`;
      assert.deepEqual(ids.resume(ALICE, S1, ids.seal(ALICE, id)), { id });
    });

    it('refuses a changed answer, a changed MAC, a dropped part, and odd input', () => {
      const opening = ids.sealOpening(S1, answer, 'p0');
      const other = answerDigest('g1nBBBB.n0.tag');
      const refused = [
        opening.replace(answer, other),
        `${opening.slice(0, -1)}${opening.endsWith('A') ? 'B' : 'A'}`,
        opening.replace(`.${answer}`, ''),
        `q0${opening.slice(2)}`,
        `${opening}x`,
        opening.slice(1 + 'p0'.length),
        '',
      ];
      for (const presented of refused) assert.equal(ids.resume(ALICE, S1, presented), undefined, presented);
      assert.throws(() => ids.sealOpening(S1, 'not a digest', 'p0'), TypeError);
    });

    it('is keyed by the secret: another gateway secret opens no opening', () => {
      const other = createEventIds(Buffer.alloc(32, 8));
      assert.equal(other.resume(ALICE, S1, ids.sealOpening(S1, answer, 'p0')), undefined);
    });
  });
});
