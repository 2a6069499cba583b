/**
 * A long string left out of JSON.parse is checked in two parts (scan.ts `checked`, skeleton.ts
 * validStrings): the pre-scan reads it as JSON.parse would from its first backslash on, and only
 * the plain bytes before that are read again, for raw control bytes. A body holding one long string
 * with a flaw anywhere (a raw control byte before or after the first escape, a bad escape, a short
 * `\u`, a backslash at the end) must be refused exactly when JSON.parse refuses it, at any
 * alignment of the body in memory and of the flaw in it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BODY_LIMITS, parseBody } from '../../../src/jsonrpc/parse.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const PRE = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x","arguments":{"s":"';
const POST = '"}}}';

const PIECES = [
  'a',
  'abcd',
  '\\"',
  '\\\\',
  '\\/',
  '\\n',
  '\\b',
  '\\u00e9',
  '\\uD800',
  '\\x',
  '\\u12"',
  '\\U0041',
  '\u0001',
  '\u001f',
  '\t',
  '\u007f',
  'é',
];

/** The body's bytes at `offset` (0 to 3) past a 4-aligned address, as a socket read may give them. */
function at(text: string, offset: number): Buffer {
  const bytes = Buffer.from(text);
  const memory = Buffer.alloc(bytes.length + 4);
  bytes.copy(memory, offset);
  return memory.subarray(offset, offset + bytes.length);
}

/** 'ok' or the error code, for the fast path (skeletonFrom 0) with arguments unread or read. */
function outcome(body: Buffer, argumentsRead: boolean): string {
  try {
    parseBody(body, KNOWN_METHODS, BODY_LIMITS, argumentsRead, 0);
    return 'ok';
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return err.code;
  }
}

function byJsonParse(text: string): string {
  try {
    JSON.parse(text);
    return 'ok';
  } catch {
    return 'ERR_PARSE';
  }
}

describe('a long string checked in two parts', () => {
  it('is refused where JSON.parse refuses it, wherever the flaw stands', () => {
    fc.assert(
      fc.property(
        fc.nat(3),
        fc.nat(1100),
        fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }),
        fc.nat(1100),
        fc.option(fc.constantFrom('\u0000', '\u0019', '\n'), { nil: undefined }),
        fc.nat(2000),
        (offset, plainBefore, pieces, plainAfter, control, controlAt) => {
          let inner = 'p'.repeat(plainBefore) + pieces.join('') + 'q'.repeat(plainAfter);
          if (control !== undefined) {
            const k = controlAt % (inner.length + 1);
            inner = inner.slice(0, k) + control + inner.slice(k);
          }
          // Long enough for the pre-scan to report it (1 KiB with its quotes).
          if (inner.length < 1100) inner += 'z'.repeat(1100 - inner.length);
          const text = PRE + inner + POST;
          const expected = byJsonParse(text);
          const body = at(text, offset);
          assert.equal(outcome(body, false), expected, JSON.stringify(inner));
          assert.equal(outcome(body, true), expected, JSON.stringify(inner));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('is refused for a flaw after the first escape that the plain bytes before it do not show', () => {
    const plain = 'a'.repeat(1200);
    for (const flaw of ['\u0001', '\\x', '\\u12zz', '\\U0041', '\\\u0000']) {
      for (const escape of ['\\n', '\\u00e9', '\\"']) {
        const text = `${PRE}${plain}${escape}${'b'.repeat(100)}${flaw}c${POST}`;
        for (let offset = 0; offset < 4; offset++)
          assert.equal(outcome(at(text, offset), false), 'ERR_PARSE', JSON.stringify(flaw + escape));
      }
    }
  });

  it('tells where the part it did not read begins', () => {
    const plain = 'a'.repeat(1200);
    const open = PRE.length - 1;
    const scanOf = (inner: string) => {
      const result = scanJson(Buffer.from(PRE + inner + POST), BODY_LIMITS);
      assert.ok(result.ok);
      return { long: [...result.long], checked: [...result.checked] };
    };
    // Plain: up to the closing quote; escaped: up to the first backslash; a bad escape: -1.
    const end = open + 1 + plain.length;
    assert.deepEqual(scanOf(plain), { long: [open, end + 1], checked: [end] });
    assert.deepEqual(scanOf(`${plain}\\n${plain}`), {
      long: [open, end + 2 + plain.length + 1],
      checked: [end],
    });
    assert.deepEqual(scanOf(`${plain}\\n\u0001${plain}`).checked, [-1]);
    assert.deepEqual(scanOf(`${plain}\\q${plain}`).checked, [-1]);
    assert.deepEqual(scanOf(`\\u00e9${plain}`).checked, [open + 1]);
  });
});
