/**
 * Putting kept numbers into JSON.parse's value in one pass over the bytes (place-numbers.ts) gives
 * exactly what parsing the body again with those numbers marked gives (lossless.ts): keys escaped or
 * not, integer-like keys (which V8 orders first), a `__proto__` key, any nesting, whitespace
 * anywhere, a number at the top; and, in the mode for bodies that repeat a key, where the value
 * holds only the last member of each key, whatever the earlier members held.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import fc from 'fast-check';
import { placeNumbers } from '../../../src/jsonrpc/place-numbers.ts';
import { isRawNumber, parseKeepingNumbers, rawNumberText } from '../../../src/jsonrpc/lossless.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { BODY_LIMITS, parseBody } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

/** A value with kept numbers spelled out, for a deep comparison. */
function plain(value: unknown): unknown {
  if (isRawNumber(value)) return { kept: rawNumberText(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    const out: [string, unknown][] = [];
    for (const key of Object.keys(value)) out.push([key, plain((value as Record<string, unknown>)[key])]);
    return out;
  }
  return value;
}

function place(text: string, repeatedKeys = false): { placed: unknown; marked: unknown } {
  const body = Buffer.from(text);
  const scan = scanJson(body, BODY_LIMITS);
  assert.ok(scan.ok);
  if (scan.lossy.length === 0) return { placed: JSON.parse(text), marked: JSON.parse(text) };
  const placed = placeNumbers(
    body,
    JSON.parse(text),
    scan.lossy,
    isAscii(body) ? text : undefined,
    repeatedKeys,
  );
  return { placed, marked: parseKeepingNumbers(body, scan.lossy) };
}

const ws = fc.constantFrom('', ' ', '\n\t ', '\r\n');
const numberLexeme = fc.oneof(
  fc.constantFrom('-0', '0', '1.0', '1e400', '-1E+2', '12345678901234567890', '0.10', '5e-324', '7', '-3.5'),
  fc.stringMatching(/^-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?$/),
);
// No key holds a quote or a backslash: V8's JSON.parse can read a key spelled with an escape as an
// earlier key holding a backslash (both sides of the comparison would be wrong; parseBody refuses
// such a body before placing anything: parse.ts, key-check.ts).
const key = fc.oneof(
  fc.constantFrom('a', 'b', '0', '1', '10', '2', '__proto__', 'k\\/q', 'n\\u0061me', 'é', '😀', '-1', '01'),
  fc
    .string({ maxLength: 6 })
    .map((s) => JSON.stringify(s).slice(1, -1))
    .filter((k) => !k.includes('\\"') && !k.includes('\\\\')),
);

/** JSON text whose objects repeat keys often (as `a`, `\u0061` or `b`). */
const repeating: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberLexeme,
    fc.constantFrom('true', 'null', '"s"'),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(fc.constantFrom('a', 'a', '\\u0061', 'b'), ws, tie('value')), { maxLength: 5 })
      .map((members) => `{${members.map(([k, w, v]) => `"${k}"${w}:${v}`).join(',')}}`),
  ),
})).value;

/** JSON text with unique keys per object (as written: escapes kept as spelled). */
const text: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberLexeme,
    fc.constantFrom('true', 'false', 'null', '"s"', '"\\\\"', '"\\u00e9x"', '"1e400"'),
    fc
      .tuple(fc.array(fc.tuple(ws, tie('value'), ws), { maxLength: 5 }))
      .map(([items]) => `[${items.map(([a, v, b]) => `${a}${v}${b}`).join(',')}]`),
    fc
      .uniqueArray(fc.tuple(key, ws, tie('value')), {
        maxLength: 5,
        selector: ([k]) => JSON.parse(`"${k}"`) as string,
      })
      .map((members) => `{${members.map(([k, w, v]) => `${w}"${k}"${w}:${w}${v}`).join(',')}}`),
  ),
})).value;

describe('placeNumbers', () => {
  it('gives what a parse with the numbers marked gives, for any body without a repeated key', () => {
    fc.assert(
      fc.property(text, ws, (t, w) => {
        const { placed, marked } = place(`${w}${t}${w}`);
        assert.notEqual(placed, undefined, 'the pass never gives up on such a body');
        assert.deepStrictEqual(plain(placed), plain(marked));
      }),
      { numRuns: 3000 },
    );
  });

  it('when keys repeat, gives what a parse with the numbers marked gives: only the last member counts', () => {
    fc.assert(
      fc.property(repeating, (t) => {
        const { placed, marked } = place(t, true);
        assert.notEqual(placed, undefined, 'the pass never gives up on such a body');
        assert.deepStrictEqual(plain(placed), plain(marked));
      }),
      { numRuns: 3000 },
    );
  });

  it('puts a number in an integer-like member V8 orders first, and under an escaped key', () => {
    const { placed } = place('{"z":1,"b":{"k\\/q":1.0},"10":[0,-0],"2":1e400}');
    assert.deepStrictEqual(plain(placed), [
      ['2', { kept: '1e400' }],
      ['10', [0, { kept: '-0' }]],
      ['z', 1],
      ['b', [['k/q', { kept: '1.0' }]]],
    ]);
  });

  it('a repeated key keeps the last member: the number written first is not put in its place', () => {
    // Read in order, the bytes put 1.0 where the value holds the later 1, and 1e400 into the object
    // of the later "b": the pass undoes what it placed under a member a later one replaced.
    const parsed = parseBody(
      Buffer.from(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1.0,"a":1,"b":{"c":1e400},"b":{"c":2}}}}',
      ),
      KNOWN_METHODS,
    );
    const args = (parsed.messages[0] as unknown as { params: { arguments: unknown } }).params.arguments;
    assert.deepStrictEqual(plain(args), [
      ['a', 1],
      ['b', [['c', 2]]],
    ]);
    assert.match(parsed.bytes.toString(), /"arguments":\{"a":1,"b":\{"c":2\}\}/);
  });
});
