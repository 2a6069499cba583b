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
import { at, byJsonParse, fastOutcome } from '../../helpers/aligned-body.ts';

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
          assert.equal(fastOutcome(body, false), expected, JSON.stringify(inner));
          assert.equal(fastOutcome(body, true), expected, JSON.stringify(inner));
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
          assert.equal(fastOutcome(at(text, offset), false), 'ERR_PARSE', JSON.stringify(flaw + escape));
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

/** Pieces of a string as bytes: the text ones, and invalid UTF-8 (a lone byte, overlong, a surrogate, cut short). */
const BYTE_PIECES = [
  ...PIECES.map((p) => Buffer.from(p)),
  Buffer.from([0xff]),
  Buffer.from([0xc0, 0x80]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from('\\'),
];
/** Plain runs around the lengths where the pre-scan changes how it reads (32-bit words up to 128 bytes, LONG_STRING). */
const RUNS = [
  0, 1, 3, 4, 5, 62, 63, 64, 65, 124, 126, 127, 128, 129, 131, 1017, 1020, 1022, 1023, 1024, 1025,
];

const aString = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...RUNS).map((n) => Buffer.alloc(n, 0x61)) },
    { weight: 1, arbitrary: fc.constantFrom(...BYTE_PIECES) },
  ),
  { maxLength: 4 },
);

/** The outcome of a parse: the error code, or what a reader reads and what the forwarded bytes mean. */
function full(body: Buffer, argumentsRead: boolean, skeletonFrom: number): unknown {
  try {
    const parsed = parseBody(body, KNOWN_METHODS, BODY_LIMITS, argumentsRead, skeletonFrom);
    const read = parsed.messages.map((m) => {
      const params = (m as { params?: Record<string, unknown> }).params;
      // Unread arguments stay placeholders on the fast path: compare the rest.
      return argumentsRead || params === undefined ? m : { ...m, params: { ...params, arguments: 0 } };
    });
    return { read: JSON.stringify(read), bytes: JSON.parse(parsed.bytes.toString('utf8')) as unknown };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return err.code;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

describe('several long strings in a large body', () => {
  it('are refused where JSON.parse refuses the body, and read as the whole parse reads them', () => {
    let refused = 0;
    fc.assert(
      fc.property(
        fc.nat(3),
        fc.array(fc.tuple(fc.array(aString, { minLength: 1, maxLength: 3 }), aString, fc.boolean()), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.constantFrom(0, 1000, 4100),
        (offset, messages, pad) => {
          const parts: Buffer[] = [Buffer.from(messages.length > 1 ? '[' : '')];
          messages.forEach(([args, meta, inArray], m) => {
            parts.push(Buffer.from(`${m > 0 ? ',' : ''}{"jsonrpc":"2.0","id":${m},"method":"tools/call"`));
            parts.push(Buffer.from(`,"params":{"name":"x","arguments":{"pad":"${'p'.repeat(pad)}"`));
            args.forEach((s, k) => {
              // Long enough for the pre-scan to report it, or as it came.
              const text = k === 0 ? Buffer.concat([...s, Buffer.alloc(1100, 0x7a)]) : Buffer.concat(s);
              parts.push(
                Buffer.from(inArray ? `,"s${k}":["` : `,"s${k}":"`),
                text,
                Buffer.from(inArray ? '"]' : '"'),
              );
            });
            parts.push(
              Buffer.from('},"_meta":{"m":"'),
              ...meta,
              Buffer.alloc(1030, 0x6d),
              Buffer.from('"}}}'),
            );
          });
          parts.push(Buffer.from(messages.length > 1 ? ']' : ''));
          // At `offset` past a 4-aligned address, as a socket read may give it.
          const body = Buffer.concat(parts);
          const memory = Buffer.alloc(body.length + 4);
          body.copy(memory, offset);
          const aligned = memory.subarray(offset, offset + body.length);
          let valid = true;
          try {
            JSON.parse(strictUtf8.decode(aligned));
          } catch {
            valid = false;
            refused++;
          }
          for (const argumentsRead of [false, true]) {
            const whole = full(aligned, argumentsRead, Infinity);
            if (!valid) assert.equal(whole, 'ERR_PARSE');
            assert.deepStrictEqual(full(aligned, argumentsRead, 0), whole);
          }
        },
      ),
      { numRuns: 400 },
    );
    // Many bodies hold a flaw somewhere, and many do not.
    assert.ok(refused > 40 && refused < 360, String(refused));
  });
});
