/**
 * The arguments walk (unread-spans.ts) does not read again a short string the pre-scan read whole
 * and found valid (scan.ts `plain`): it takes the end the pre-scan found. A body of many short
 * strings in unread arguments, one of them flawed anywhere (a raw control byte in a word read four
 * bytes at a time or in the bytes read one by one, an escape), must be refused exactly when
 * JSON.parse refuses it, at any alignment of the body in memory.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BODY_LIMITS } from '../../../src/jsonrpc/parse.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { at, byJsonParse, fastOutcome } from '../../helpers/aligned-body.ts';

const PRE = '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{"s":[';
const POST = ']}}}';

describe('short strings the pre-scan found valid, not read again', () => {
  it('a flaw in any of them is refused where JSON.parse refuses it', () => {
    fc.assert(
      fc.property(
        fc.nat(3),
        fc.array(fc.nat(140), { minLength: 1, maxLength: 60 }),
        fc.nat(),
        fc.nat(200),
        fc.constantFrom('\u0000', '\u0001', '\u001f', '\n', '\t', '\\n', '\\x', '"', 'é', '\u007f'),
        (offset, lengths, which, position, flaw) => {
          const strings = lengths.map((n, k) => 'abcdefgh'.repeat(18).slice(k % 8, (k % 8) + n));
          const k = which % strings.length;
          const s = strings[k] as string;
          const p = position % (s.length + 1);
          strings[k] = s.slice(0, p) + flaw + s.slice(p);
          // Padded past 4 KiB, so the pre-scan reads words.
          const pad = `"${'p'.repeat(4096)}"`;
          const text = `${PRE}${pad},${strings.map((x) => `"${x}"`).join(',')}${POST}`;
          assert.equal(fastOutcome(at(text, offset), false), byJsonParse(text), JSON.stringify(strings[k]));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('are exactly the short strings without a backslash or a raw control byte', () => {
    const text = `{"a":["plain","with\\"escape","x\u0001y","${'w'.repeat(200)}",""],"k${'q'.repeat(5000)}":0}`;
    const result = scanJson(Buffer.from(text), BODY_LIMITS, true);
    assert.ok(result.ok);
    const found: string[] = [];
    for (let k = 0; k < result.plain.length; k += 2)
      found.push(text.slice(result.plain[k] as number, result.plain[k + 1] as number));
    // `"k…"` is long (5,001 bytes): read with indexOf, not noted; nor the 200-byte string.
    assert.deepEqual(found, ['"a"', '"plain"', '""']);
    // Not asked for: none.
    const plain = scanJson(Buffer.from(text), BODY_LIMITS);
    assert.ok(plain.ok);
    assert.equal(plain.plain.length, 0);
  });
});
