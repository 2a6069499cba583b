import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { writeMillis, writeNumber, writeString } from '../../../src/audit/json-bytes.ts';
import { LineBuffer } from '../../../src/audit/line-buffer.ts';
import type { LineSink } from '../../../src/audit/line-buffer.ts';
import { round3 } from '../../../src/audit/record.ts';

/** What `write` puts in a line buffer, as text. */
function bytesOf(write: (out: LineSink) => void): string {
  const out = new LineBuffer();
  out.append({ writeTo: write });
  return out.take()?.toString('utf8') ?? '';
}

describe('JSON values as bytes', () => {
  it('a string: the UTF-8 of JSON.stringify, for any UTF-16 units (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.string({ unit: 'binary-ascii' }),
          fc.string({ unit: 'grapheme' }),
          fc.string({ unit: fc.integer({ min: 0, max: 0x9f }).map((c) => String.fromCharCode(c)) }),
        ),
        (s) =>
          assert.equal(
            bytesOf((out) => writeString(out, s)),
            JSON.stringify(s),
          ),
      ),
      { numRuns: 5000 },
    );
  });

  it('a number: JSON.stringify, null when it is not finite (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.double(), fc.integer(), fc.maxSafeInteger(), fc.constantFrom(-0, 2 ** 53, 1e21, NaN)),
        (n) =>
          assert.equal(
            bytesOf((out) => writeNumber(out, n)),
            JSON.stringify(n),
          ),
      ),
      { numRuns: 5000 },
    );
  });

  it('milliseconds: JSON.stringify of round3 (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double(),
          fc.double({ min: 0, max: 1e6, noNaN: true }),
          fc.integer({ min: 0, max: 1e9 }).map((k) => k / 1000),
          fc.double({ min: 1e11, max: 1e13, noNaN: true }),
          fc.constantFrom(0, -0, -0.0004, 0.0005, 999_999_999_999.9995, 1e12 - 0.0001, 1e12),
        ),
        (ms) =>
          assert.equal(
            bytesOf((out) => writeMillis(out, ms)),
            JSON.stringify(round3(ms)),
          ),
      ),
      { numRuns: 5000 },
    );
  });
});
