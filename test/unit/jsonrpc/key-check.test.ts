/**
 * key-check.ts: whether each object of a parsed value holds exactly the keys its bytes spell, each
 * decoded on its own. Checked here against values built by hand (as V8's misread would build them)
 * and against JSON.stringify of any value, with one key changed anywhere.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keysAsSpelled, parsedAsSpelled } from '../../../src/jsonrpc/key-check.ts';
import { parseKeepingNumbers } from '../../../src/jsonrpc/lossless.ts';
import { BODY_LIMITS, parseBody } from '../../../src/jsonrpc/parse.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';

const check = (text: string, value: unknown) => keysAsSpelled(Buffer.from(text), value);

/** Each character of `key` spelled plainly or as a `\u` escape, as `how` picks (JSON's escapes kept). */
function spellKey(key: string, how: number[]): string {
  let out = '';
  for (let k = 0; k < key.length; k++) {
    const unit = key.charCodeAt(k);
    if ((how[k % how.length] as number) % 3 === 0) out += `\\u${unit.toString(16).padStart(4, '0')}`;
    else out += JSON.stringify(key[k]).slice(1, -1);
  }
  return `"${out}"`;
}

describe('keysAsSpelled', () => {
  it('tells a key read as another from one read as spelled, at any depth', () => {
    const text = String.raw`{"q":1,"n\u0061me":"rm_rf"}`;
    assert.equal(check(text, { q: 1, name: 'rm_rf' }), true);
    assert.equal(check(text, { q: 1, 'n\\u0': 'rm_rf' }), false);
    const nested = String.raw` [ {"a" : [1, {"path\/" : {}}]}, "x" ] `;
    assert.equal(check(nested, [{ a: [1, { 'path/': {} }] }, 'x']), true);
    assert.equal(check(nested, [{ a: [1, { 'path\\': {} }] }, 'x']), false);
    // A key the bytes spell twice, or one the value holds beyond them, fails too.
    assert.equal(check('{"a":1,"a":2}', { a: 2 }), false);
    assert.equal(check('{"a":1}', { a: 1, b: 2 }), false);
    assert.equal(check('[{}]', [{}, {}]), false);
    assert.equal(check('{"a":{}}', { a: [] }), false);
    // An object lists its array-index keys first: they are paired by name, not by position.
    assert.equal(check(String.raw`{"b\\":1,"1":2,"a\u0062":3,"0":4}`, { 0: 4, 1: 2, 'b\\': 1, ab: 3 }), true);
    assert.equal(check(String.raw`{"b\\":1,"1":2,"a\u0062":3}`, { 1: 2, 'b\\': 1, 'a\\u0': 3 }), false);
    // Keys with raw UTF-8, and a surrogate pair spelled as two escapes.
    assert.equal(
      check(String.raw`{"é\u0061":1,"\ud83d\ude00":2,"😀x":3}`, { éa: 1, '😀': 2, '😀x': 3 }),
      true,
    );
    assert.equal(check(String.raw`{"é\u0061":1}`, { éb: 1 }), false);
    assert.equal(check(String.raw`{"é\u0061":1}`, { 'é\\u0': 1 }), false);
    // A placeholder or a kept number is a string or a number in the bytes: not looked into.
    assert.equal(check(String.raw`{"s":"\u00000","n":1.0}`, { s: 'long text', n: Object.freeze({}) }), true);
  });

  it('accepts what JSON.stringify spells, and refuses it with any one key changed', () => {
    const key = fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom('\\', 'a\\', '"', '\u0000', '\ud800'));
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null)),
        fc.array(tie('value'), { maxLength: 3 }),
        fc.dictionary(key, tie('value'), { maxKeys: 3 }),
      ),
    })).value;
    fc.assert(
      fc.property(json, fc.nat(), fc.string({ maxLength: 2 }), (value, which, extra) => {
        const text = JSON.stringify(value, null, which % 3);
        assert.equal(check(text, value), true);
        // Rename the which-th key of the parsed value (in a fresh copy).
        const copy = JSON.parse(text) as unknown;
        const objects: Record<string, unknown>[] = [];
        const stack = [copy];
        while (stack.length > 0) {
          const v = stack.pop();
          if (typeof v !== 'object' || v === null) continue;
          if (!Array.isArray(v) && Object.keys(v).length > 0) objects.push(v as Record<string, unknown>);
          stack.push(...Object.values(v as object));
        }
        if (objects.length === 0) return;
        const o = objects[which % objects.length] as Record<string, unknown>;
        const keys = Object.keys(o);
        const from = keys[which % keys.length] as string;
        const to = `${from}\\${extra}`;
        if (Object.hasOwn(o, to)) return;
        o[to] = o[from];
        delete o[from];
        assert.equal(check(text, copy), false);
      }),
      { numRuns: 500 },
    );
  });
});

/** Keys no other test sends (V8's memory of keys is the process's). */
const unique = (tag: string) => `q${process.pid}${tag}`;

describe('keysAsSpelled, keys spelled with escapes anywhere', () => {
  it('accepts objects whose keys are spelled with any escapes, and refuses them with one key changed', () => {
    // Long keys too: a long name's checked spelling is remembered, and a later key with the same
    // bytes is compared with them at once (the same name spelled otherwise is read again).
    const key = fc.oneof(
      fc.string({ maxLength: 6 }),
      fc.string({ unit: 'binary', maxLength: 4 }),
      fc.constantFrom('\\', 'a\\', 'name', '0', '12', 'é', '\ud800', '😀'),
      fc
        .tuple(fc.string({ minLength: 14, maxLength: 20 }), fc.constantFrom('', '\\', 'é', 'x'))
        .map(([a, b]) => a + b),
    );
    const spelling = fc.array(fc.nat(5), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(
        fc.uniqueArray(key, { maxLength: 6 }),
        fc.array(spelling, { minLength: 1, maxLength: 3 }),
        fc.nat(),
        (keys, hows, which) => {
          // The same keys in each object of an array, each object spelling them its own way (or
          // the same way as another).
          const objects = hows.map(
            (how) => `{${keys.map((k, n) => `${spellKey(k, how)}:[${n}]`).join(',')}}`,
          );
          const text = `[${objects.join(',')}]`;
          const value = hows.map(() => Object.fromEntries(keys.map((k, n) => [k, [n]])));
          assert.equal(check(text, value), true, text);
          if (keys.length === 0) return;
          const from = keys[which % keys.length] as string;
          const to = `${from}\\`;
          if (keys.includes(to)) return;
          const changed = value.map((o, m) =>
            m === which % hows.length
              ? Object.fromEntries(keys.map((k, n) => [k === from ? to : k, [n]]))
              : o,
          );
          assert.equal(check(text, changed), false, text);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('parsedAsSpelled (parses no pre-scan read)', () => {
  it('walks nothing without a backslash in the text or in a key, and catches the misread', () => {
    assert.equal(parsedAsSpelled('{"a":1}', { b: 1 }), true, 'no backslash: not walked');
    assert.equal(parsedAsSpelled(String.raw`{"a\n":1}`, { b: 1 }), true, 'no key with one: not walked');
    const text = String.raw`{"q":1,"n\u0061me":2}`;
    assert.equal(parsedAsSpelled(text, { q: 1, 'n\\u0': 2 }), false);
    assert.equal(parsedAsSpelled(Buffer.from(text), { q: 1, 'n\\u0': 2 }), false);
    assert.equal(parsedAsSpelled(text, { q: 1, name: 2 }), true);
  });

  it('pairs a repeated key with its last member, as JSON.parse keeps it', () => {
    // An answer may repeat a key (the matching refuses those it reads: read-once.ts); the members a
    // later one replaced are not in the value, so nothing in them is paired.
    const text = String.raw` {"p":[{"x\/":1}], "p" : [{"\\":0}], "q":{"a":1,"a":{"\\":2}}} `;
    assert.equal(parsedAsSpelled(text, { p: [{ '\\': 0 }], q: { a: { '\\': 2 } } }), true);
    assert.equal(parsedAsSpelled(text, { p: [{ 'x\\': 0 }], q: { a: { '\\': 2 } } }), false);
    assert.equal(parsedAsSpelled(text, { p: [{ '\\': 0 }], q: { a: 1 } }), false);
    assert.equal(parsedAsSpelled(text, { p: [{ '\\': 0 }], q: { a: { '\\': 2 } }, r: 1 }), false);
    // keysAsSpelled, for request bodies, still refuses a repeated key.
    assert.equal(keysAsSpelled(Buffer.from(text), { p: [{ '\\': 0 }], q: { a: { '\\': 2 } } }), false);
  });
});

describe('the parse again that keeps numbers (lossless.ts), after the checked parse', () => {
  it('is refused when it misreads a key the checked parse read as spelled', () => {
    // The second message's params, built after the first's, hold `n\\u0` after the same keys: the
    // first parse reads `n\u0061me` as name, the next parse of the same bytes as `n\\u0` (the name
    // gone from what would be judged, not from the bytes forwarded). A big integer makes
    // parseKeepingNumbers a way this body could take. (A repeated key, `name` and `n\u0061me`, is
    // refused by the check of the first parse: keysAsSpelled pairs no repeated key.)
    const q = unique('keep');
    const body = Buffer.from(
      String.raw`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"${q}":1,"n\u0061me":"echo","arguments":{"n":12345678901234567890}}},` +
        String.raw`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"${q}":1,"n\\u0":"x","arguments":{"n":12345678901234567890}}}]`,
    );
    const judged = parseBody(body, KNOWN_METHODS);
    assert.equal((judged.messages[0] as unknown as { params: { name: string } }).params.name, 'echo');
    const scan = scanJson(body, BODY_LIMITS);
    assert.ok(scan.ok && scan.lossy.length === 4);
    // What V8 does on the next parse of these bytes (the misread this test needs).
    const next = JSON.parse(body.toString()) as { params: Record<string, unknown> }[];
    assert.equal(next[0]?.params.name, undefined, 'the test must reproduce the misread');
    assert.equal(parseKeepingNumbers(body, scan.lossy), undefined);
  });

  it('keeps the numbers of a body read as spelled', () => {
    const q = unique('kept');
    const body = Buffer.from(String.raw`{"${q}":1,"n\\u0":12345678901234567890,"x":1.0}`);
    const scan = scanJson(body, BODY_LIMITS);
    assert.ok(scan.ok);
    assert.equal(JSON.stringify(parseKeepingNumbers(body, scan.lossy)), body.toString());
  });
});
