import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createArgumentSanitizer, REDACTED, TRUNCATED } from '../../../src/audit/arguments.ts';
import { parseKeepingNumbers } from '../../../src/jsonrpc/lossless.ts';

const limits = { maxDepth: 3, maxString: 10, maxEntries: 3, budget: 1000 };

describe('argument sanitizer', () => {
  it('redacts names containing a configured name at any depth, in any case, ignoring - and _', () => {
    const sanitize = createArgumentSanitizer(['Password', 'api_key']);
    assert.deepEqual(
      sanitize(
        {
          password: 'p',
          a: [{ API_KEY: { deep: 'x' } }],
          b: { c: { d: { pAsSwOrD: 1 } } },
          passwords: 'p2',
          'x-api-key': 'k',
          apiKeyId: 'k2',
          note: 'kept',
        },
        { left: 10_000 },
      ),
      {
        password: REDACTED,
        a: [{ API_KEY: REDACTED }],
        b: { c: { d: { pAsSwOrD: REDACTED } } },
        passwords: REDACTED,
        'x-api-key': REDACTED,
        apiKeyId: REDACTED,
        note: 'kept',
      },
    );
  });

  it('cuts long strings, deep nesting and long lists', () => {
    const sanitize = createArgumentSanitizer([], limits);
    assert.deepEqual(sanitize('abcdefghijklmnop', { left: 1000 }), 'abcdefghij…');
    assert.deepEqual(sanitize({ a: { b: { c: { d: 1 } } } }, { left: 1000 }), { a: { b: { c: TRUNCATED } } });
    assert.deepEqual(sanitize([1, 2, 3, 4, 5], { left: 1000 }), [1, 2, 3, '[+2 items]']);
    assert.deepEqual(sanitize({ a: 1, b: 2, c: 3, d: 4, e: 5 }, { left: 1000 }), {
      a: 1,
      b: 2,
      c: 3,
      [TRUNCATED]: '+2 keys',
    });
  });

  it('shares one budget across calls', () => {
    const sanitize = createArgumentSanitizer([], { maxDepth: 5, maxString: 100, maxEntries: 100, budget: 0 });
    const budget = { left: 60 };
    const first = sanitize({ text: 'x'.repeat(40) }, budget);
    assert.deepEqual(first, { text: 'x'.repeat(40) });
    const second = sanitize({ text: 'y'.repeat(40) }, budget);
    assert.notDeepEqual(second, { text: 'y'.repeat(40) });
    assert.equal(sanitize({ more: 1 }, budget), TRUNCATED);
  });

  it('logs a number kept as its lexeme by that spelling, clipped like a string', () => {
    const sanitize = createArgumentSanitizer([], { maxDepth: 5, maxString: 8, maxEntries: 10, budget: 1000 });
    const text = Buffer.from('{"id":12345678901234567890,"x":1e400,"n":2}');
    const input = parseKeepingNumbers(text, [6, 26, 31, 36]);
    assert.equal(JSON.stringify(sanitize(input, { left: 1000 })), '{"id":"12345678…","x":"1e400","n":2}');
  });

  it('keeps a "__proto__" key as data, not as a prototype', () => {
    const sanitize = createArgumentSanitizer(['secret']);
    const input = JSON.parse('{"__proto__": {"secret": "s", "x": 1}}') as unknown;
    const out = sanitize(input, { left: 1000 }) as object;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(JSON.stringify(out), '{"__proto__":{"secret":"[redacted]","x":1}}');
  });

  it('output is bounded for any JSON input, and redacted names never keep their value', () => {
    const small = { maxDepth: 4, maxString: 50, maxEntries: 8, budget: 2000 };
    const sanitize = createArgumentSanitizer(['token'], small);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.string({ minLength: 1 }), (value, secret) => {
        const input = { token: secret, value };
        const out = sanitize(input, { left: small.budget }) as Record<string, unknown>;
        const text = JSON.stringify(out);
        assert.equal(out.token, REDACTED);
        // budget plus one maximal overshoot (a clipped string, an ellipsis, separators)
        assert.ok(text.length <= small.budget + small.maxString * 8 + 200, `${text.length}`);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a non-string redact entry at build time', () => {
    assert.throws(() => createArgumentSanitizer([1 as unknown as string]), TypeError);
  });
});
