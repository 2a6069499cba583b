/**
 * The pre-scan stops at the byte that crosses a limit: a 4 MiB body of opening brackets costs the
 * gateway the first few dozen bytes, not a parse of the whole body.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { parseBody, MAX_DEPTH } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const limits = { maxDepth: 8, maxValues: 50 };
const FOUR_MIB = 4 * 1024 * 1024;

/** A scan's result with its kept numbers and depths as arrays (the scan gives typed-array views). */
function arrays(result: ReturnType<typeof scanJson>): unknown {
  if (!result.ok) return result;
  return { ...result, lossy: Array.from(result.lossy), depths: Array.from(result.depths) };
}

describe('scanJson', () => {
  it('stops the moment the depth limit is crossed: bytes examined, not bytes sent', () => {
    const body = Buffer.alloc(FOUR_MIB, '[');
    const result = scanJson(body, limits);
    assert.deepEqual(result, { ok: false, limit: 'depth', examined: 9 });
  });

  it('counts depth only outside strings, escaped quotes included', () => {
    const inString = Buffer.from(`["${'[{'.repeat(100)}\\"${'['.repeat(100)}"]`);
    assert.equal(scanJson(inString, limits).ok, true);
    const after = Buffer.from(`["\\\\"${'['.repeat(20)}`);
    assert.deepEqual(scanJson(after, limits), { ok: false, limit: 'depth', examined: 13 });
  });

  it('stops the moment the value count is crossed', () => {
    const body = Buffer.from(`[${'0,'.repeat(FOUR_MIB / 2 - 2)}0]`);
    const result = scanJson(body, limits);
    // The array is value 1; value 51 is the 50th zero, at offset 1 + 49 * 2.
    assert.deepEqual(result, { ok: false, limit: 'values', examined: 100 });
  });

  it('counts keys, strings, literals and containers as values', () => {
    const result = scanJson(Buffer.from('{"a":[true,false,null,"x",-1.5,{}]}'), limits);
    assert.deepEqual(result, {
      ok: true,
      values: 9,
      lossy: [],
      depths: [],
      unicodeEscape: false,
      keyQuote: false,
      keyEscape: false,
      long: [],
      checked: [],
      plain: [],
    });
  });

  it('tells how many containers each kept number is in', () => {
    const result = scanJson(
      Buffer.from('[1.0,{"a":[-0,"x",{"b":1e400}],"c":12345678901234567890},2.0] '),
      limits,
    );
    assert.ok(result.ok);
    assert.deepEqual(Array.from(result.depths), [1, 3, 4, 2, 1]);
    assert.equal(result.lossy.length, 2 * result.depths.length);
  });

  it('gives the kept numbers as views of typed arrays, not as JavaScript arrays', () => {
    // Two arrays of 48,000 kept numbers cost ~290 page faults a body, fresh each time.
    const result = scanJson(Buffer.from(`[${'1.0,'.repeat(1000)}0]`), { maxDepth: 64, maxValues: 10_000 });
    assert.ok(result.ok);
    assert.ok(ArrayBuffer.isView(result.lossy) && ArrayBuffer.isView(result.depths));
    assert.equal(result.lossy.length, 2000);
    assert.equal(result.depths.length, 1000);
    assert.deepEqual([result.lossy[1998], result.lossy[1999], result.depths[999]], [3997, 4000, 1]);
  });

  it('flags numbers a double does not spell back the same way, and only those', () => {
    for (const lossy of ['12345678901234567890', '1e400', '-0', '1.0', '1E2', '0.10', '-0.0', '1e-400']) {
      assert.deepEqual(
        arrays(scanJson(Buffer.from(`[${lossy}]`), limits)),
        {
          ok: true,
          values: 2,
          lossy: [1, 1 + lossy.length],
          depths: [1],
          unicodeEscape: false,
          keyQuote: false,
          keyEscape: false,
          long: [],
          checked: [],
          plain: [],
        },
        lossy,
      );
    }
    for (const exact of [
      '0',
      '-1',
      '123456789012345',
      '9007199254740991',
      '1.5',
      '-0.25',
      '1e+21',
      '5e-324',
    ]) {
      assert.deepEqual(
        scanJson(Buffer.from(`[${exact}]`), limits),
        {
          ok: true,
          values: 2,
          lossy: [],
          depths: [],
          unicodeEscape: false,
          keyQuote: false,
          keyEscape: false,
          long: [],
          checked: [],
          plain: [],
        },
        exact,
      );
    }
  });
});

describe('scanJson: which numbers are kept as written', () => {
  it('exactly those a double prints otherwise, and integers of 17 digits or more (differential)', () => {
    // The scan settles most spellings by their characters alone; this is the plain rule.
    const kept = (x: string) =>
      (/^-?[0-9]+$/.test(x) && x.replace('-', '').length >= 17) || String(Number(x)) !== x;
    const lexeme = fc.oneof(
      fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
      fc.stringMatching(/^-?(0|[1-9][0-9]{0,20})(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?$/),
      fc.constantFrom('-0.0000010001381721984723', '1e+21', '1e21', '1.5e-7', '1.0e5', '0.0', '-0'),
    );
    fc.assert(
      fc.property(lexeme, (x) => {
        const r = scanJson(Buffer.from(`[${x}]`), limits);
        assert.ok(r.ok);
        assert.equal(r.lossy.length > 0, kept(x), x);
      }),
      { numRuns: 20000 },
    );
  });
});

describe("scanJson: what parse.ts needs to forward the client's bytes", () => {
  it('tells a \\u escape in a string or key from other escapes and from text that only looks like one', () => {
    const escaped = (text: string) => {
      const r = scanJson(Buffer.from(text), limits);
      assert.ok(r.ok, text);
      return r.unicodeEscape;
    };
    assert.equal(escaped('["\\u0065cho"]'), true);
    assert.equal(escaped('{"n\\u0061me":1}'), true);
    assert.equal(escaped('["a\\"b", "\\\\u0065"]'), false, 'an escaped backslash before u');
    assert.equal(escaped('["\\n\\t\\/\\""]'), false);
    assert.equal(escaped('["u0065"]'), false);
  });

  it('counts what JSON.parse keeps when no key repeats, and more when one does', () => {
    const count = (text: string) => {
      const r = scanJson(Buffer.from(text), limits);
      assert.ok(r.ok, text);
      return r.values;
    };
    assert.equal(count('{"a":1,"b":{"c":[true,"x"]}}'), 9);
    assert.equal(count('{"a":1,"a":{"c":[true,"x"]}}'), 9, 'the scan counts both "a" members');
  });
});

describe('parseBody limits', () => {
  it(`refuses a body nested deeper than ${MAX_DEPTH} with -32700`, () => {
    const deep = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":${'['.repeat(FOUR_MIB - 200)}}}}`;
    assert.throws(
      () => parseBody(Buffer.from(deep), KNOWN_METHODS),
      (err: unknown) =>
        isGatewayError(err) && err.code === 'ERR_PARSE' && /nested deeper than 64/.test(err.message),
    );
  });

  it(`accepts nesting of exactly ${MAX_DEPTH}`, () => {
    const inner = MAX_DEPTH - 4; // message, params, arguments, "a" array
    const body = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":${'['.repeat(inner)}${']'.repeat(inner)}}}}`;
    assert.equal(parseBody(Buffer.from(body), KNOWN_METHODS).messages.length, 1);
  });
});

describe('scanJson: keys holding an escaped quote', () => {
  const flag = (text: string) => {
    const r = scanJson(Buffer.from(text), { maxDepth: 64, maxValues: 1000 });
    assert.equal(r.ok, true);
    return r.ok && r.keyQuote;
  };
  it('flags a key spelled with \\" (short, long, with whitespace before the colon), and nothing else', () => {
    assert.equal(flag(String.raw`{"\"":1}`), true);
    assert.equal(flag(String.raw`{"a":{"b\"c" :1}}`), true);
    assert.equal(flag(`{"${'x'.repeat(100)}\\"":1}`), true);
    assert.equal(flag(String.raw`{"a":"say \"hi\"","b":["\""]}`), false);
    assert.equal(flag(String.raw`{"C:\\dir\\":1,"\u0022":2}`), false);
  });
});

describe('scanJson: keys holding any escape', () => {
  const flag = (text: string) => {
    const r = scanJson(Buffer.from(text), { maxDepth: 64, maxValues: 1000 });
    assert.equal(r.ok, true);
    return r.ok && r.keyEscape;
  };
  it('flags a key spelled with any escape (short, long, with whitespace before the colon), and nothing else', () => {
    for (const key of ['\\n', '\\/', 'n\\u0061me', '\\\\', '\\"', `${'x'.repeat(200)}\\t`])
      assert.equal(flag(`{"a":{"${key}" :1}}`), true, key);
    assert.equal(flag(String.raw`{"a":"say \"hi\"","b":["\n", "\u0041"], "c":"\\" }`), false);
    assert.equal(flag(`{"${'x'.repeat(2000)}":"${'y'.repeat(2000)}\\n"}`), false);
  });
});

describe('scanJson: a large body read a word at a time', () => {
  it('finds what a byte-by-byte read finds: the same body aligned and not aligned in memory', () => {
    const piece = fc.constantFrom('a', 'abc', 'x'.repeat(70), '\\"', '\\\\', '\\u00e9', '\\u0', 'é', '\\n');
    const str = fc.array(piece, { maxLength: 30 }).map((ps) => `"${ps.join('')}"`);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(str, fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.nat(3),
        (items, pad) => {
          const members = items.map(([s, key], k) => (key ? `${s}:${k}` : `"k${k}":${s}`));
          const text = `{"p":"${'P'.repeat(4100 + pad)}",${members.join(',')}}`;
          const at = (offset: number) => {
            const memory = Buffer.alloc(Buffer.byteLength(text) + 8);
            const length = memory.write(text, offset, 'utf8');
            return memory.subarray(offset, offset + length);
          };
          const aligned = at(4);
          const unaligned = at(5);
          const limits = { maxDepth: 64, maxValues: 100_000 };
          assert.deepEqual(arrays(scanJson(aligned, limits)), arrays(scanJson(unaligned, limits)));
        },
      ),
      { numRuns: 500 },
    );
  });
});
