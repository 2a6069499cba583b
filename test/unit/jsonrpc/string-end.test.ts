/**
 * string-end.ts, shared by the splice and the number placing pass: each string of a
 * body of JSON strings ends where JSON.stringify ended it, its escape flags are right, and the lazy
 * backslash search carries over from one string to the next (short and long strings, escapes
 * before, inside and after the 64 bytes read one by one).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StringEnds } from '../../../src/jsonrpc/string-end.ts';

const piece = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.constantFrom('"', '\\', '\n', '\u0001', 'é', '😀'),
  fc.string({ minLength: 60, maxLength: 140 }),
);
const text = fc.array(piece, { maxLength: 6 }).map((parts) => parts.join(''));

/** Whether the spelled string `s` holds a `\u` escape (an escaped backslash before a u is not one). */
function holdsUnicodeEscape(s: string): boolean {
  for (let k = 1; k < s.length - 1; k++) {
    if (s[k] !== '\\') continue;
    if (s[k + 1] === 'u') return true;
    k++;
  }
  return false;
}

describe('where a JSON string ends', () => {
  it('finds every closing quote of a body of strings, with its escape flags', () => {
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 6 }), (values) => {
        const spelled = values.map((v) => JSON.stringify(v));
        const body = Buffer.from(spelled.join(','));
        const strings = new StringEnds(body);
        let at = 0;
        for (const s of spelled) {
          const bytes = Buffer.byteLength(s);
          assert.equal(strings.close(at), at + bytes - 1);
          assert.equal(strings.escaped, s.includes('\\'));
          assert.equal(strings.unicode, holdsUnicodeEscape(s));
          at += bytes + 1;
        }
      }),
      { numRuns: 500 },
    );
  });

  it('says -1 for a string that does not end, short or long, escaped or not', () => {
    for (const body of ['"abc', `"${'x'.repeat(100)}`, '"a\\"', `"${'x'.repeat(100)}\\"`]) {
      assert.equal(new StringEnds(Buffer.from(body)).close(0), -1, body);
    }
  });
});
