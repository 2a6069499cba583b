/**
 * digit-run.ts reads a long run of digits four bytes at a time: it must end the run exactly where a
 * byte-by-byte read ends it, at any alignment of the buffer in memory and of the run in the buffer,
 * next to every byte that is not a digit (the ones beside '0' and '9' above all).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { digitsEnd, wordsOf } from '../../../src/jsonrpc/digit-run.ts';

function byteByByte(b: Uint8Array, j: number): number {
  while (j < b.length && (b[j] as number) >= 0x30 && (b[j] as number) <= 0x39) j++;
  return j;
}

describe('the end of a run of digits, a word at a time', () => {
  it('is where a byte-by-byte read ends it', () => {
    const other = fc.oneof(
      fc.constantFrom(0x2f, 0x3a, 0x3f, 0x20, 0x2e, 0x65, 0x00, 0xb0, 0xf9),
      fc.integer({ min: 0, max: 255 }),
    );
    fc.assert(
      fc.property(
        fc.nat(3),
        fc.nat(80),
        fc.array(fc.tuple(fc.nat(120), other), { maxLength: 3 }),
        fc.nat(100),
        fc.nat(3),
        (offset, before, breaks, after, start) => {
          const length = before + 130 + after;
          const memory = new Uint8Array(new ArrayBuffer(length + 4));
          const b = memory.subarray(offset, offset + length);
          for (let k = 0; k < length; k++) b[k] = 0x30 + ((k * 7) % 10);
          for (const [at, byte] of breaks) b[(before + at) % length] = byte;
          const from = Math.min(start + before, length);
          const expected = byteByByte(b, from);
          assert.equal(digitsEnd(b, from, wordsOf(b)), expected);
          assert.equal(digitsEnd(b, from, undefined), expected);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('reads a run to the end of the buffer, and a 4 MiB one', () => {
    const b = Buffer.alloc(4 * 1024 * 1024, '1');
    assert.equal(digitsEnd(b, 0, wordsOf(b)), b.length);
    b[b.length - 3] = 0x3a;
    assert.equal(digitsEnd(b, 1, wordsOf(b)), b.length - 3);
  });
});
