/**
 * strict-skip.ts's string() reads a string four bytes at a time where it can (four plain bytes, or
 * two escapes other than `\u`): it must end or refuse a string exactly as JSON.parse does, at any
 * alignment of the buffer in memory and of the string in it, with escapes split across words.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NOT_JSON, string, useWords } from '../../../src/jsonrpc/strict-skip.ts';

/** What string() says about the string opening at `i`: the index after it, or 'not JSON'. */
function end(b: Uint8Array, i: number, words: boolean): number | string {
  useWords(words ? b : undefined);
  try {
    return string(b, i);
  } catch (err) {
    if (err === NOT_JSON) return 'not JSON';
    throw err;
  } finally {
    useWords(undefined);
  }
}

/** What JSON.parse says: the index after the first prefix from `i` that is a string, or 'not JSON'. */
function byJsonParse(text: string, i: number): number | string {
  for (let j = text.indexOf('"', i + 1); j !== -1; j = text.indexOf('"', j + 1)) {
    try {
      JSON.parse(text.slice(i, j + 1));
      return j + 1;
    } catch {
      // an escaped quote, or not JSON: the next quote decides
    }
  }
  return 'not JSON';
}

const PIECES = [
  'a',
  'ab',
  '\\"',
  '\\\\',
  '\\/',
  '\\n',
  '\\t',
  '\\b',
  '\\u00e9',
  '\\uD800',
  '\\x',
  '\\u12',
  '\\U0041',
  '\\',
  '"',
  '\u0001',
  '\u001f',
  '\u007f',
];

describe('a JSON string read a word at a time', () => {
  it('ends or is refused where JSON.parse ends or refuses it', () => {
    fc.assert(
      fc.property(
        fc.nat(3),
        fc.nat(7),
        fc.array(fc.constantFrom(...PIECES), { maxLength: 40 }),
        fc.boolean(),
        (offset, before, pieces, close) => {
          // ASCII only, so the text's offsets are the bytes'.
          const text = `${' '.repeat(before)}"${pieces.join('')}${close ? '"' : ''}   `;
          const memory = new Uint8Array(new ArrayBuffer(text.length + 4));
          const b = memory.subarray(offset, offset + text.length);
          for (let k = 0; k < text.length; k++) b[k] = text.charCodeAt(k);
          const expected = byJsonParse(text, before);
          assert.equal(end(b, before, true), expected, text);
          assert.equal(end(b, before, false), expected, text);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
