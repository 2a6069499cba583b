/**
 * Sealed event ids: the client sees each upstream event id sealed for its key, and a Last-Event-ID
 * opens only for the key it was sealed for, unchanged (src/integrity/event-ids.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createEventIds } from '../../../src/integrity/event-ids.ts';

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
});
