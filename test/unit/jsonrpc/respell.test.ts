/**
 * respell.ts: a JSON string's bytes re-spelled without building its text give exactly what
 * JSON.stringify(JSON.parse(bytes)) gives, for strings spelled in every way JSON allows: each
 * character plainly or as a `\u` escape (upper- or lower-case hex), surrogate pairs as two escapes,
 * lone surrogates, short escapes (`\/` included), control characters, and raw UTF-8.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { respellString } from '../../../src/jsonrpc/respell.ts';

/** One UTF-16 unit spelled as JSON allows it to be. */
function spellUnit(unit: number, how: number): string {
  const hex = unit.toString(16).padStart(4, '0');
  if (how % 3 === 0) return `\\u${how % 2 === 0 ? hex : hex.toUpperCase()}`;
  const ch = String.fromCharCode(unit);
  if (ch === '"' || ch === '\\') return `\\${ch}`;
  if (ch === '/' && how % 3 === 1) return '\\/';
  if (unit < 0x20 || (unit >= 0xd800 && unit <= 0xdfff)) return JSON.stringify(ch).slice(1, -1);
  return ch;
}

const unit = fc.oneof(
  fc.integer({ min: 0, max: 0x7f }),
  fc.integer({ min: 0, max: 0xffff }),
  fc.constantFrom(0x22, 0x5c, 0x2f, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x00, 0x1f, 0x7f, 0x80, 0x7ff, 0x800),
  fc.constantFrom(0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00, 0x2028, 0xfeff, 0xffff),
);
/** A whole character outside the BMP, spelled raw or as two escapes. */
const astral = fc.tuple(fc.integer({ min: 0x10000, max: 0x10ffff }), fc.nat(5)).map(([cp, how]) => {
  const ch = String.fromCodePoint(cp);
  if (how % 2 === 0) return ch;
  return [...ch].length === 1 ? `\\u${ch.charCodeAt(0).toString(16)}\\u${ch.charCodeAt(1).toString(16)}` : ch;
});
const piece = fc.oneof(
  fc.tuple(unit, fc.nat(5)).map(([u, how]) => spellUnit(u, how)),
  astral,
);
const spelled = fc.array(piece, { maxLength: 40 }).map((parts) => `"${parts.join('')}"`);

function respelled(text: string, pad = 0): Buffer {
  const bytes = Buffer.from(`${' '.repeat(pad)}${text} `);
  const out = Buffer.alloc(bytes.length + 8, 0xff);
  const end = respellString(bytes, pad, pad + Buffer.byteLength(text), out, 3);
  assert.ok(end - 3 <= Buffer.byteLength(text), 'no spelling is longer than the original');
  return out.subarray(3, end);
}

describe('re-spelling a JSON string from its bytes', () => {
  it('writes what JSON.stringify(JSON.parse(bytes)) writes', () => {
    fc.assert(
      fc.property(spelled, fc.nat(3), (text, pad) => {
        const expected = Buffer.from(JSON.stringify(JSON.parse(text)));
        assert.deepEqual(respelled(text, pad), expected);
      }),
      { numRuns: 5000 },
    );
  });

  it('spells each kind of character as JSON.stringify does', () => {
    const cases: Array<[string, string]> = [
      ['"\\u0061"', '"a"'],
      ['"\\u00E9"', '"é"'],
      ['"\\u20ac"', '"€"'],
      ['"\\ud83d\\ude00"', '"😀"'],
      ['"\\uD83D\\uDE00x"', '"😀x"'],
      ['"\\ud83d"', '"\\ud83d"'],
      ['"\\uDE00"', '"\\ude00"'],
      ['"\\ud83d\\u0061"', '"\\ud83da"'],
      ['"\\ud83d\\ud83d\\ude00"', '"\\ud83d😀"'],
      ['"\\u0022\\u005c"', '"\\"\\\\"'],
      ['"\\u0008\\u0009\\u000a\\u000c\\u000d"', '"\\b\\t\\n\\f\\r"'],
      ['"\\u0000\\u001F\\u007f"', '"\\u0000\\u001f\u007f"'],
      ['"\\/\\"\\\\\\b"', '"/\\"\\\\\\b"'],
      ['"é😀\\u0041"', '"é😀A"'],
      ['""', '""'],
    ];
    for (const [text, expected] of cases) {
      assert.equal(respelled(text).toString(), expected, text);
      assert.equal(expected, JSON.stringify(JSON.parse(text)), `the case itself: ${text}`);
    }
  });
});
