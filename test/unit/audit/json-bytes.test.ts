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

/** JSON.stringify's output with the three line breaks it leaves as they are written as escapes. */
function escapeBreaks(json: string): string {
  return json.replace(/[\u0085\u2028\u2029]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

describe('JSON values as bytes', () => {
  it('a string holding a character other readers end a line at is still one line, and reads back the same', () => {
    // Python's str.splitlines, Java's \R and Unicode's line breaking end a line at each of these;
    // JSON.stringify leaves U+0085, U+2028 and U+2029 as they are (failed before: three lines).
    const s = 'tool\u2028{"forged":1}\u0085x\u2029\u000b\u000c\u001c\u001d\u001e\r\n';
    const line = bytesOf((out) => writeString(out, s));
    // eslint-disable-next-line no-control-regex -- the control characters Python's splitlines ends lines at
    assert.doesNotMatch(line, /[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/);
    assert.equal(JSON.parse(line), s);
  });

  it('a string: the UTF-8 of JSON.stringify with U+0085, U+2028 and U+2029 escaped, for any UTF-16 units (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary' }),
          fc.string({ unit: 'binary-ascii' }),
          fc.string({ unit: 'grapheme' }),
          fc.string({ unit: fc.integer({ min: 0, max: 0x9f }).map((c) => String.fromCharCode(c)) }),
          fc.string({ unit: fc.integer({ min: 0x2020, max: 0x202f }).map((c) => String.fromCharCode(c)) }),
        ),
        (s) =>
          assert.equal(
            bytesOf((out) => writeString(out, s)),
            escapeBreaks(JSON.stringify(s)),
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
