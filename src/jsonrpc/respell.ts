/**
 * A JSON string re-spelled as JSON.stringify spells its text, written from its bytes to bytes with
 * no string built: what the splice forwards for a string that holds a `\u` escape (splice.ts).
 * Building the text and stringifying it cost about a microsecond per string, which a body of 100,000
 * short escaped strings turned into 100 ms; this pass costs a few nanoseconds per byte.
 *
 * JSON.stringify spells a character as itself (UTF-8 here), but `"` and `\` as `\"` and `\\`, the
 * five control characters with a short escape as that (`\b \t \n \f \r`), the other control
 * characters as `\u00xx`, and a lone surrogate as `\udxxx` (lower-case hex). The bytes of a valid
 * string are read the way JSON.parse reads them: a `\u` escape is one UTF-16 code unit, and a high
 * one followed by an escaped low one is one character (a surrogate pair spelled as two escapes);
 * `\/` is `/`; raw bytes are valid UTF-8 (the caller checked the body), and already their own
 * spelling. No spelling is longer than what it replaces, so the output fits in the input's length.
 */

import { hex } from './unescape.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const HEX_DIGITS = Buffer.from('0123456789abcdef');

/** For each control character with a short escape, its letter (0: none). */
const SHORT_LETTER = new Uint8Array(0x20);
SHORT_LETTER[0x08] = 0x62; // \b
SHORT_LETTER[0x09] = 0x74; // \t
SHORT_LETTER[0x0a] = 0x6e; // \n
SHORT_LETTER[0x0c] = 0x66; // \f
SHORT_LETTER[0x0d] = 0x72; // \r

/**
 * Writes into `out` at `at` the JSON.stringify spelling of the valid JSON string whose quotes are
 * at `start` and `end - 1` in `b`, and returns the index after it. `out` has room for `end - start`
 * bytes from `at`.
 */
export function respellString(
  b: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
): number {
  out[at++] = QUOTE;
  const last = end - 1;
  let i = start + 1;
  while (i < last) {
    const c = b[i] as number;
    if (c !== BACKSLASH) {
      out[at++] = c;
      i++;
      continue;
    }
    const e = b[i + 1] as number;
    if (e !== 0x75) {
      // `\/` is `/`; the others (`\" \\ \b \f \n \r \t`) are JSON.stringify's own.
      if (e === 0x2f) out[at++] = 0x2f;
      else {
        out[at++] = BACKSLASH;
        out[at++] = e;
      }
      i += 2;
      continue;
    }
    const unit = hex(b, i + 2);
    i += 6;
    if (unit >= 0xd800 && unit <= 0xdbff && b[i] === BACKSLASH && b[i + 1] === 0x75) {
      const low = hex(b, i + 2);
      if (low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
        out[at++] = 0xf0 | (cp >> 18);
        out[at++] = 0x80 | ((cp >> 12) & 0x3f);
        out[at++] = 0x80 | ((cp >> 6) & 0x3f);
        out[at++] = 0x80 | (cp & 0x3f);
        i += 6;
        continue;
      }
    }
    if (unit < 0x80) {
      if (unit >= 0x20) {
        if (unit === QUOTE || unit === BACKSLASH) out[at++] = BACKSLASH;
        out[at++] = unit;
      } else if (SHORT_LETTER[unit] !== 0) {
        out[at++] = BACKSLASH;
        out[at++] = SHORT_LETTER[unit] as number;
      } else at = escapeUnit(out, at, unit);
    } else if (unit < 0x800) {
      out[at++] = 0xc0 | (unit >> 6);
      out[at++] = 0x80 | (unit & 0x3f);
    } else if (unit >= 0xd800 && unit <= 0xdfff) {
      // A lone surrogate (a high one not followed by an escaped low one, or a low one alone).
      at = escapeUnit(out, at, unit);
    } else {
      out[at++] = 0xe0 | (unit >> 12);
      out[at++] = 0x80 | ((unit >> 6) & 0x3f);
      out[at++] = 0x80 | (unit & 0x3f);
    }
  }
  out[at++] = QUOTE;
  return at;
}

/** `\u` and the unit's four lower-case hex digits. */
function escapeUnit(out: Uint8Array, at: number, unit: number): number {
  out[at++] = BACKSLASH;
  out[at++] = 0x75;
  out[at++] = HEX_DIGITS[(unit >> 12) & 0xf] as number;
  out[at++] = HEX_DIGITS[(unit >> 8) & 0xf] as number;
  out[at++] = HEX_DIGITS[(unit >> 4) & 0xf] as number;
  out[at++] = HEX_DIGITS[unit & 0xf] as number;
  return at;
}
