/**
 * Forwarding a body that repeats a key or holds a `\u` escape: the client's bytes without the members
 * a later member with the same key replaced, and with each string that holds a `\u` escape spelled
 * as JSON.stringify spells it (splice.ts). Against the re-serialisation that was forwarded before
 * (JSON.stringify of the judged value), for generated bodies with repeated keys at any depth,
 * escapes in keys and values, kept numbers and batches: the spliced bytes (i) read as the same value
 * (JSON.parse, a parse that keeps each number's spelling, and the gateway's own parse), (ii) repeat
 * no key at any depth, (iii) hold no `\u` escape JSON.stringify would not write, (iv) are strict
 * UTF-8. Then the attacks by name.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isAscii, isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import type { ParsedBody } from '../../../src/jsonrpc/parse.ts';
import { spliceBody } from '../../../src/jsonrpc/splice.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { walkTree } from '../../../src/jsonrpc/tree.ts';
import { isRawNumber, rawNumberText } from '../../../src/jsonrpc/lossless.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { BODY_LIMITS } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { readTokens } from '../../helpers/json-tokens.ts';

/** What was forwarded before: the judged value, re-serialised. */
function reserialised(parsed: ParsedBody): string {
  return JSON.stringify(parsed.batch ? parsed.messages : parsed.messages[0]);
}

/** A parse that keeps each number's spelling (what a lossless upstream reads). */
function readExactly(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' ? { number: context?.source } : value,
  );
}

/** A parsed value with kept numbers spelled out, for a deep comparison (key order aside). */
function plain(value: unknown): unknown {
  if (isRawNumber(value)) return { kept: rawNumberText(value) };
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      Object.defineProperty(out, key, {
        value: plain((value as Record<string, unknown>)[key]),
        enumerable: true,
      });
    }
    return out;
  }
  return value;
}

/** The splice of `text` as parse.ts calls it (undefined: it fell back), and its parse. */
function splice(text: string): { bytes: Buffer | undefined; parsed: ParsedBody } {
  const body = Buffer.from(text);
  const parsed = parseBody(body, KNOWN_METHODS);
  const scan = scanJson(body, BODY_LIMITS);
  assert.ok(scan.ok);
  const values = walkTree(JSON.parse(text), true).values;
  const ascii = isAscii(body) ? text : undefined;
  return {
    bytes: spliceBody(body, JSON.parse(text), scan.lossy, values !== scan.values, values, ascii),
    parsed,
  };
}

/** (i) to (iv), and that parse.ts forwards these very bytes. */
function checkSpliced(text: string): void {
  const { bytes, parsed } = splice(text);
  assert.ok(bytes !== undefined, 'the splice accounts for every value');
  assert.deepStrictEqual(parsed.bytes, bytes, 'parse.ts forwards the splice');
  const out = bytes.toString('utf8');
  const before = reserialised(parsed);
  assert.ok(isUtf8(bytes), 'strict UTF-8');
  assert.deepStrictEqual(JSON.parse(out), JSON.parse(before));
  assert.deepStrictEqual(readExactly(out), readExactly(before));
  const again = parseBody(bytes, KNOWN_METHODS);
  assert.deepStrictEqual(plain(again.messages), plain(parsed.messages), "the gateway's own parse");
  assert.deepStrictEqual(again.bytes, bytes, 'forwarding the forwarded bytes changes nothing');
  const tokens = readTokens(out);
  assert.equal(tokens.repeatedKey, false, 'no key repeats at any depth');
  for (const raw of tokens.strings) {
    if (raw.includes('\\u')) assert.equal(raw, JSON.stringify(JSON.parse(raw)), 'spelled as JSON.stringify');
  }
}

/** A string spelled some way a client might: per character, raw, a short escape or `\u` (any case). */
function spell(s: string, styles: readonly number[]): string {
  let out = '"';
  const chars = [...s];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i] as string;
    const style = styles[i % Math.max(1, styles.length)] ?? 0;
    const c = ch.codePointAt(0) as number;
    const lone = c >= 0xd800 && c <= 0xdfff;
    const u = (unit: number) => {
      const hex = unit.toString(16).padStart(4, '0');
      return `\\u${style % 2 === 0 ? hex : hex.toUpperCase()}`;
    };
    const escaped = ch.length === 2 ? u(ch.charCodeAt(0)) + u(ch.charCodeAt(1)) : u(c);
    if (style % 3 === 0 || c < 0x20 || lone) out += escaped;
    else if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '/' && style % 3 === 1) out += '\\/';
    else out += ch;
  }
  return `${out}"`;
}

const char = fc.oneof(
  fc.constantFrom('a', 'é', '😀', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028'),
  fc.constantFrom('\ud83d', '\ude00', '\ud800'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const styles = fc.array(fc.nat(5), { minLength: 1, maxLength: 4 });
const jsonString = fc
  .tuple(fc.array(char, { maxLength: 5 }), styles)
  .map(([cs, st]) => spell(cs.join(''), st));
/** Keys that repeat often, spelled plainly or with escapes (`"a"`, `"\u0061"`, `"\u0041"` is A). */
const key = fc
  .tuple(fc.constantFrom('a', 'b', 'id', 'name', 'x', 'é', '😀', '', 'a/b'), styles)
  .map(([k, st]) => spell(k, st));
const ws = fc.constantFrom('', '', ' ', '\n\t ', '\r\n');
const numberLexeme = fc.oneof(
  fc.constantFrom('-0', '0', '1.0', '1e400', '-1E+2', '12345678901234567890', '0.10', '5e-324', '7', '-3.5'),
  fc.stringMatching(/^-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?$/),
);

const value: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberLexeme,
    fc.constantFrom('true', 'false', 'null'),
    jsonString,
    fc
      .array(fc.tuple(ws, tie('value'), ws), { maxLength: 4 })
      .map((items) => `[${items.map(([a, v, b]) => `${a}${v}${b}`).join(',')}]`),
    fc
      .array(fc.tuple(ws, key, ws, tie('value'), ws), { maxLength: 5 })
      .map((members) => `{${members.map(([a, k, b, v, c]) => `${a}${k}${b}:${v}${c}`).join(',')}}`),
  ),
})).value;

/** Top-level members of a tools/call, some of them repeated, in any order, some keys escaped. */
const message = fc
  .tuple(
    fc.integer({ min: -5, max: 5 }),
    value,
    fc.array(
      fc.tuple(
        fc.constantFrom(
          '"id"',
          '"\\u0069d"',
          '"method"',
          '"me\\u0074hod"',
          '"params"',
          '"jsonrpc"',
          '"extra"',
        ),
        fc.oneof(value, fc.constantFrom('"tools/call"', '"ping"', '7', '"2.0"', '{"name":"t"}')),
      ),
      { maxLength: 3 },
    ),
    fc.array(fc.tuple(key, value), { maxLength: 2 }),
    ws,
  )
  .map(([id, args, extra, paramsExtra, w]) => {
    const params = [
      `"name":${spell('t', [1])}`,
      `"arguments":${args}`,
      ...paramsExtra.map(([k, v]) => `${k}:${v}`),
    ];
    const members = [
      ...extra.map(([k, v]) => `${k}:${v}`),
      `"jsonrpc":"2.0"`,
      `"id":${id}`,
      `"method":"tools/call"`,
      `"params":{${params.join(`,${w}`)}}`,
    ];
    return `{${members.join(`,${w}`)}}`;
  });
const body = fc.oneof(
  message,
  fc.array(message, { minLength: 1, maxLength: 3 }).map((ms) => `[ ${ms.join(' ,')} ]`),
);

function accepted(text: string): boolean {
  try {
    parseBody(Buffer.from(text), KNOWN_METHODS);
    return true;
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return false;
  }
}

describe('splicing the forwarded bytes (property, against re-serialising)', () => {
  it('reads as the same value, repeats no key, escapes only as JSON.stringify does, is UTF-8', () => {
    let spliced = 0;
    fc.assert(
      fc.property(body, (text) => {
        if (!accepted(text)) return;
        const scan = scanJson(Buffer.from(text), BODY_LIMITS);
        assert.ok(scan.ok);
        if (!scan.unicodeEscape && walkTree(JSON.parse(text), true).values === scan.values) return;
        spliced++;
        checkSpliced(text);
      }),
      { numRuns: 3000 },
    );
    // The generator must reach the path under test, not only bodies refused or forwarded as sent.
    assert.ok(spliced > 1000, `${spliced} of 3000 bodies spliced`);
  });
});

describe('splicing the forwarded bytes: attacks by name', () => {
  const call = (args: string) =>
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":${args}}}`;
  const forwarded = (text: string) => {
    checkSpliced(text);
    return parseBody(Buffer.from(text), KNOWN_METHODS).bytes.toString('utf8');
  };

  it('a repeated method, name or id: only the member judged is forwarded', () => {
    assert.equal(
      forwarded('{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping"}'),
      '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    );
    assert.equal(
      forwarded('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm_rf","name":"echo"}}'),
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}',
    );
    assert.equal(
      forwarded('{"jsonrpc":"2.0","id":"a","method":"ping","id":2}'),
      '{"jsonrpc":"2.0","method":"ping","id":2}',
    );
    // Spelled apart: the escaped key is the same key to JSON.parse.
    assert.equal(
      forwarded(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\\u0061me":"rm_rf","name":"echo"}}',
      ),
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}',
    );
    assert.equal(
      forwarded(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\\u0061me":"rm_rf"}}',
      ),
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm_rf"}}',
    );
  });

  it('"__proto__" spelled with escapes is refused as before; inside a replaced member it is left out', () => {
    assert.throws(
      () => parseBody(Buffer.from(call('{"\\u005f_proto__":{"admin":true}}')), KNOWN_METHODS),
      (err: unknown) => isGatewayError(err) && err.code === 'ERR_INVALID_REQUEST',
    );
    assert.equal(forwarded(call('{"a":{"\\u005f_proto__":{"admin":true}},"a":2}')), call('{"a":2}'));
    assert.equal(forwarded(call('{"a":{"NAME":1,"name":2},"a":2}')), call('{"a":2}'));
  });

  it('a repeated key whose earlier value is huge: the forwarded bytes hold only the later one', () => {
    const huge = `"${'x'.repeat(1 << 20)}"`;
    assert.equal(forwarded(call(`{"k":${huge},"k":1}`)), call('{"k":1}'));
    assert.equal(forwarded(call(`{"k":${'1'.repeat(1 << 20)},"k":[1.0]}`)), call('{"k":[1.0]}'));
  });

  it('repeated keys and escapes inside a replaced member go with it', () => {
    assert.equal(
      forwarded(call('{"a":{"b":1,"b":2,"c":"\\u0041","d":{"e":0,"e":1}},"z":0,"a":{"b":3}}')),
      call('{"z":0,"a":{"b":3}}'),
    );
  });

  it('a key three times, and every comma left well placed', () => {
    assert.equal(forwarded(call('{"a":1,"a":2,"a":3}')), call('{"a":3}'));
    assert.equal(forwarded(call('{ "a" : 1 , "b":0, "a":2 ,"a" : 3 }')), call('{ "b":0, "a" : 3 }'));
    // The replaced member first, in the middle, next to another, the only other one; the member
    // kept is always after it, so no member left out is last.
    assert.equal(forwarded(call('{"a":1,"b":2,"a":3}')), call('{"b":2,"a":3}'));
    assert.equal(forwarded(call('{"b":0,"a":1,"c":2,"a":3}')), call('{"b":0,"c":2,"a":3}'));
    assert.equal(forwarded(call('{"a":1,"b":2,"a":3,"b":4}')), call('{"a":3,"b":4}'));
    assert.equal(forwarded(call('{"a":1,"b":2,"b":3,"a":4}')), call('{"b":3,"a":4}'));
    assert.equal(forwarded(call('{"a":1,"a":2}')), call('{"a":2}'));
    assert.equal(forwarded(call('{"a":{},"a":[]}')), call('{"a":[]}'));
  });

  it('re-spells only the strings with a \\u escape, as JSON.stringify does; the rest stays as sent', () => {
    assert.equal(forwarded(call('{"s":"\\u0065cho","t":"a\\/b\\n"}')), call('{"s":"echo","t":"a\\/b\\n"}'));
    assert.equal(forwarded(call('{"\\u0073":1}')), call('{"s":1}'));
    // JSON.stringify's own escapes: control characters and lone surrogates, in lower case.
    assert.equal(
      forwarded(call('["\\u0001","\\u001F","\\uD800x","\\u0008"]')),
      call('["\\u0001","\\u001f","\\ud800x","\\b"]'),
    );
    assert.equal(
      forwarded(call('["\\uD83D\\uDE00","\\u005c","\\u0022\\"","\\u2028"]')),
      call('["😀","\\\\","\\"\\"","\u2028"]'),
    );
    // An escaped backslash before `u` is no \u escape: such a string stays as sent.
    assert.equal(forwarded(call('["\\\\u0041","\\u0041"]')), call('["\\\\u0041","A"]'));
  });

  it('keeps number spellings and whitespace elsewhere, in a batch too', () => {
    assert.equal(
      forwarded(call('{"a":1.0,"a":1e400,"b":[ -0, 12345678901234567890 ]}')),
      call('{"a":1e400,"b":[ -0, 12345678901234567890 ]}'),
    );
    assert.equal(
      forwarded(
        ' [ {"jsonrpc":"2.0","id":1,"method":"ping","method":"ping"} ,\n{"jsonrpc":"2.0","id":2,"method":"p\\u0069ng"} ] ',
      ),
      '[ {"jsonrpc":"2.0","id":1,"method":"ping"} ,\n{"jsonrpc":"2.0","id":2,"method":"ping"} ]',
    );
  });

  it("gives up, for the caller to re-serialise, when its count is not the parsed value's", () => {
    const body = Buffer.from(call('{"a":1,"a":2}'));
    const scan = scanJson(body, BODY_LIMITS);
    assert.ok(scan.ok);
    const values = walkTree(JSON.parse(body.toString()), false).values;
    assert.notEqual(spliceBody(body, JSON.parse(body.toString()), scan.lossy, true, values), undefined);
    assert.equal(spliceBody(body, JSON.parse(body.toString()), scan.lossy, true, values + 2), undefined);
    assert.equal(
      spliceBody(body, JSON.parse(body.toString()), scan.lossy, false, values),
      undefined,
      'a repeat it was not told of',
    );
  });
});
