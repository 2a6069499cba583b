/**
 * The forwarded message means exactly what the client sent (issue 11): for generated messages with
 * big integers, `-0`, exponents, `1.0`, string escapes and astral characters, the upstream's parse
 * of the forwarded bytes equals the client's parse of what it sent. "Equal" is strict: numbers are
 * compared by their spelling (a Python upstream reads `1.0` as a float and `1` as an int), strings
 * by their code units.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

type Json = null | boolean | { readonly num: string } | string | Json[] | { readonly obj: [string, Json][] };

/** A parse that keeps each number's spelling: what a lossless upstream (or a human) reads. */
function readExactly(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' ? { number: context?.source } : value,
  );
}

const numberLexeme = fc.oneof(
  fc.constantFrom(
    '-0',
    '0',
    '1.0',
    '-0.0',
    '1e400',
    '-1e400',
    '1e-400',
    '1E+2',
    '2e0',
    '0.1',
    '5e-324',
    '1.7976931348623157e308',
    '12345678901234567890',
    '-98765432109876543210987',
    '9007199254740993',
    '9007199254740991',
  ),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc
    .tuple(
      fc.boolean(),
      fc.stringMatching(/^(0|[1-9][0-9]{0,30})$/),
      fc.option(fc.stringMatching(/^[0-9]{1,20}$/)),
      fc.option(fc.stringMatching(/^[eE][+-]?[0-9]{1,4}$/)),
    )
    .map(([neg, int, frac, exp]) => `${neg ? '-' : ''}${int}${frac === null ? '' : `.${frac}`}${exp ?? ''}`),
);

const anyString = fc.oneof(
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
  fc.constantFrom('😀', '\ud83d', '\ude00', '\u2028', '\u0000', '"\\/', '__proto_'),
);

/**
 * Keys the gateway accepts in one object: no `__proto__`, no quote and no backslash (V8's JSON.parse
 * can read a key spelled with an escape as an earlier key holding one: key-check.ts), and no two
 * different keys equal under its case folding (parse.ts refuses all three by
 * design; this property is about what it forwards). A key
 * repeated exactly is kept: JSON.parse keeps the last, and the forwarded bytes must say the same.
 */
function acceptedKeys(members: readonly (readonly [string, unknown])[]): boolean {
  const byFold = new Map<string, string>();
  for (const [key] of members) {
    if (key === '__proto__' || key.includes('"') || key.includes('\\')) return false;
    const fold = key.toUpperCase().toLowerCase();
    const seen = byFold.get(fold);
    if (seen !== undefined && seen !== key) return false;
    byFold.set(fold, key);
  }
  return true;
}

const json: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    numberLexeme.map((num) => ({ num })),
    anyString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(anyString, fc.constantFrom('a', 'b')), tie('value')), { maxLength: 4 })
      .filter(acceptedKeys)
      .map((obj) => ({ obj })),
  ),
})).value;

/** Writes a value the way some client might: escapes chosen per character by `style`. */
function write(value: Json, style: number): string {
  if (value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return writeString(value, style);
  if (Array.isArray(value)) return `[ ${value.map((v, i) => write(v, style + i)).join(' ,')}]`;
  if ('num' in value) return value.num;
  return `{${value.obj.map(([k, v], i) => `${writeString(k, style + i)} :${write(v, style + i + 1)}`).join(',\n')}}`;
}

function writeString(s: string, style: number): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const lone = c >= 0xd800 && c <= 0xdfff && !isPaired(s, i);
    // Both halves of a surrogate pair are written alike (a raw half alone is not UTF-8).
    const mode = (style + (c >= 0xdc00 && c <= 0xdfff && !lone ? i - 1 : i) * 7) % 3;
    if (c === 0x22) out += mode === 0 ? '\\"' : '\\u0022';
    else if (c === 0x5c) out += mode === 0 ? '\\\\' : '\\u005C';
    else if (c < 0x20 || lone || mode === 1) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else if (c === 0x2f && mode === 2) out += '\\/';
    else out += s[i];
  }
  return `${out}"`;
}

function isPaired(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c <= 0xdbff) {
    const d = s.charCodeAt(i + 1);
    return d >= 0xdc00 && d <= 0xdfff;
  }
  const p = s.charCodeAt(i - 1);
  return p >= 0xd800 && p <= 0xdbff;
}

describe('lossless forwarding (property)', () => {
  it("the upstream's parse of the forwarded bytes equals the client's parse", () => {
    fc.assert(
      fc.property(json, fc.nat(), fc.integer({ min: -1000, max: 1000 }), (args, style, id) => {
        const sent = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"t","arguments":{"x":${write(args, style)}}}}`;
        const bytes = Buffer.from(sent, 'utf8');
        const parsed = parseBody(bytes, KNOWN_METHODS);
        assert.deepStrictEqual(
          readExactly(parsed.bytes.toString('utf8')),
          readExactly(bytes.toString('utf8')),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps the lexemes a double cannot hold, byte for byte', () => {
    const sent =
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"t","arguments":{"record":12345678901234567890,"huge":1e400,"neg":-0,"f":1.0,"e":1E2,"ok":3}}}';
    const forwarded = parseBody(Buffer.from(sent), KNOWN_METHODS).bytes.toString('utf8');
    assert.equal(forwarded, sent);
  });

  it('refuses an id spelled other than its double prints it (1.0, 1e0, -0)', () => {
    for (const id of ['1.0', '1e0', '-0', '12345678901234567890']) {
      assert.throws(
        () => parseBody(Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"ping"}`), KNOWN_METHODS),
        (err: unknown) => isGatewayError(err) && err.code === 'ERR_INVALID_REQUEST',
        id,
      );
    }
  });

  it('a client string shaped like the internal marker stays a string; invalid bodies stay invalid', () => {
    const sent =
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"s":"\\u0001000000000000000000000000:1e400","n":1e400}}}';
    const forwarded = parseBody(Buffer.from(sent), KNOWN_METHODS).bytes.toString('utf8');
    assert.deepEqual(readExactly(forwarded), readExactly(sent));
    for (const bad of [
      '{"jsonrpc":"2.0","id":1,"method":"ping","params":{1e400:1}}',
      '[01]',
      '{"a":1e400 1}',
    ]) {
      assert.throws(
        () => parseBody(Buffer.from(bad), KNOWN_METHODS),
        (err: unknown) => isGatewayError(err) && err.code === 'ERR_PARSE',
        bad,
      );
    }
  });

  it('refuses params that is a number kept as its lexeme', () => {
    assert.throws(
      () => parseBody(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":1e400}'), KNOWN_METHODS),
      (err: unknown) => isGatewayError(err) && err.code === 'ERR_INVALID_REQUEST',
    );
  });
});
