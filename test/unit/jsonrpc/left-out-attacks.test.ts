/**
 * Attacks on the parse that leaves arguments nobody reads, and long strings, out of JSON.parse
 * (skeleton.ts, unread-spans.ts). Each body is parsed with the fast path forced on (skeletonFrom
 * 0, arguments not read) and with the whole body given to JSON.parse (skeleton off, arguments read
 * or not). All must refuse alike (code and id), or all accept with forwarded bytes that mean the
 * same value and the same messages where a reader reads them, and those bytes must hold no
 * repeated key anywhere (an upstream that keeps the
 * first member would read something else), checked here independently of splice.ts: the pre-scan's
 * count of the bytes' values equals the count of what JSON.parse builds from them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BODY_LIMITS, parseBody } from '../../../src/jsonrpc/parse.ts';
import { scanJson } from '../../../src/jsonrpc/scan.ts';
import { walkTree } from '../../../src/jsonrpc/tree.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { applyEdits } from '../../helpers/break-body.ts';
import { readersView } from '../../helpers/reader-view.ts';

type Outcome =
  | { readonly code: string; readonly id: unknown }
  | { readonly meaning: unknown; readonly messages: unknown; readonly repeats: boolean };

/** Whether some object in `bytes` (valid JSON) repeats a key. */
function repeatsAKey(bytes: Buffer): boolean {
  const scan = scanJson(bytes, BODY_LIMITS);
  if (!scan.ok) return true;
  return scan.values !== walkTree(JSON.parse(bytes.toString('utf8')), true).values;
}

/**
 * The outcome of one parse (arguments not read, the fast path on or off): the refusal, or what the
 * forwarded bytes mean, the messages, and whether the bytes repeat a key.
 */
function outcome(body: Buffer, skeletonFrom: number, argumentsRead = false): Outcome {
  try {
    const parsed = parseBody(body, KNOWN_METHODS, BODY_LIMITS, argumentsRead, skeletonFrom);
    return {
      meaning: JSON.parse(parsed.bytes.toString('utf8')),
      messages: parsed.messages.map(readersView),
      repeats: repeatsAKey(parsed.bytes),
    };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return { code: err.code, id: err.rpcId };
  }
}

/**
 * Parses `text` with the fast path forced and with the whole body given to JSON.parse: alike
 * (the messages as readers read them when the arguments are not read; the refusal, and what the
 * forwarded bytes mean, also against a parse that reads the arguments). Returns the fast outcome.
 */
function alike(text: string | Buffer): Outcome {
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  const fast = outcome(body, 0);
  assert.deepStrictEqual(fast, outcome(body, Infinity));
  const whole = outcome(body, Infinity, true);
  if ('code' in whole) assert.deepStrictEqual(fast, whole);
  else {
    assert.ok('meaning' in fast);
    assert.deepStrictEqual(fast.meaning, whole.meaning);
    assert.equal(fast.repeats, false, 'the forwarded bytes repeat a key');
  }
  return fast;
}

/** How many messages' `params.arguments` the fast path left unbuilt (a placeholder string). */
function leftOut(text: string): number {
  const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, false, 0);
  return parsed.messages.filter(
    (m) => typeof (m as { params?: { arguments?: unknown } }).params?.arguments === 'string',
  ).length;
}

const LONG = 'L'.repeat(1100);
const call = (params: string, id = '1') =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`;

describe('arguments left out of JSON.parse: attacks that must be judged as the whole parse judges them', () => {
  it('a repeated params whose first holds the arguments left out', () => {
    for (const text of [
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"x":"${LONG}"}},"params":{"name":"echo","task":1e400}}`,
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":"${LONG}"}},"params":{"name":"rm","arguments":{"y":"${LONG}"}}}`,
      `[${call(`{"name":"rm","arguments":{"a":"${LONG}"}}`).replace('"params"', '"params":{"arguments":[1]},"params"')},${call('{"name":"x"}', '2')}]`,
    ]) {
      assert.ok('meaning' in alike(text));
    }
  });

  it('a repeated arguments key in one params, lone and in a batch', () => {
    const params = `{"name":"echo","arguments":{"cmd":"${LONG}"},"task":1.0,"arguments":{"cmd":"ls","n":1e400}}`;
    assert.ok('meaning' in alike(call(params)));
    assert.ok('meaning' in alike(`[${call(params)},${call(params, '2')}]`));
    assert.equal(leftOut(`[${call(params)},${call(params, '2')}]`), 2);
  });

  it('a key repeated outside the arguments while they are left out', () => {
    const text = call(`{"name":"rm","arguments":{"x":"${LONG}","y":[1,2,{"z":-0}]},"name":"echo"}`);
    const fast = alike(text);
    assert.ok('meaning' in fast);
    assert.equal((fast.meaning as { params: { name: string } }).params.name, 'echo');
    assert.equal(leftOut(text), 1);
  });

  it('"arguments" spelled inside a string, inside another member, with whitespace around its colon, or in another case', () => {
    for (const params of [
      `{"name":"\\"arguments\\":{}","arguments":{"x":"${LONG}"}}`,
      `{"_meta":{"arguments":{"name":"rm"}},"name":"echo","arguments":{"x":"${LONG}"}}`,
      `{"name":"echo", "arguments"\n :\t{"x":"${LONG}"} }`,
    ]) {
      assert.ok('meaning' in alike(call(params)), params.slice(0, 40));
    }
    // A case twin of the key is refused, the arguments left out or not.
    const twin = alike(call(`{"name":"echo","Arguments":{"x":"${LONG}"},"arguments":{"x":1}}`));
    assert.ok('code' in twin && twin.code === 'ERR_INVALID_REQUEST');
  });

  it('bytes that are not JSON inside left-out arguments are refused', () => {
    for (const args of [
      `{"x":"${LONG}",}`,
      `{"x":"${LONG}","n":01}`,
      `{"x":"${LONG}","n":1.}`,
      `{"x":"${LONG}","n":-}`,
      `{"x":"${LONG}","n":${'7'.repeat(40)}a}`,
      `{"x":"${LONG}","n":[1 2]}`,
      `{"x":"${LONG}","s":"a\u0001b"}`,
      `{"x":"${LONG}","s":"a\\qb"}`,
      `{"x":"${LONG}","t":tru}`,
      `{"x":"${LONG}"`,
    ]) {
      const fast = alike(call(`{"name":"echo","arguments":${args}}`));
      assert.ok('code' in fast && fast.code === 'ERR_PARSE', args.slice(-20));
    }
  });

  it('keys that repeat or differ only by case inside left-out arguments', () => {
    for (const args of [
      `{"x":"${LONG}","cmd":"ls","cmd":"rm"}`,
      `{"x":"${LONG}","cmd":"ls","CMD":"rm"}`,
      `{"x":"${LONG}","o":{"ſ":1,"S":2}}`,
      `{"x":"${LONG}","cmd":"ls","CMD":"rm","cmd":"ls"}`,
    ]) {
      alike(call(`{"name":"echo","arguments":${args}}`));
    }
    // Repeats at every depth, with members holding repeats themselves replaced: left out all the
    // same, and the forwarded bytes hold each key once.
    for (const args of [
      `{"a":{"x":1,"x":[1,{"y":2,"y":"${LONG}"}]},"b":1.0,"a":{"x":2,"x":{"z":1,"z":2}},"a":[{"q":1,"q":1e400}]}`,
      `[{"k":"${LONG}","k":1},{"k":{"k":{"k":1,"k":2},"k":3},"j":-0,"k":4}]`,
      `{"cmd":"rm -rf /","x":"${LONG}","cmd":"ls"}`,
    ]) {
      const text = call(`{"name":"echo","arguments":${args}}`);
      assert.ok('meaning' in alike(text));
      assert.ok('meaning' in alike(`[${text},${call('{"name":"x"}', '2')}]`));
      assert.equal(leftOut(text), 1);
    }
  });

  it('long digit runs next to every kind of byte, at each alignment of the body in memory', () => {
    const pad = 'P'.repeat(5000);
    for (const bad of ['', ':', '/', 'a', '.', 'e', '-', '.5', 'e+']) {
      for (let offset = 0; offset < 4; offset++) {
        const num = `${'9'.repeat(23)}${bad}${'1'.repeat(19)}`;
        const text = call(`{"name":"echo","arguments":{"p":"${pad}","n":${num}},"k":${num}}`);
        const memory = Buffer.alloc(text.length + 4);
        memory.write(text, offset, 'latin1');
        alike(memory.subarray(offset, offset + text.length));
      }
    }
  });
});

/** Bytes that break or reshape a body when put anywhere in it. */
const PIECE = fc.constantFrom(
  '"',
  '\\',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '0',
  '1',
  '-',
  '.',
  'e',
  ' ',
  '\t',
  'é',
  '"arguments":{"x":1},',
  '"params":{"arguments":{"y":2}},',
  '"task":1e400,',
  '"x":1.0,',
  ',"params":{"name":"z"}',
  '"Arguments":{},',
  '{"a":1,"a":2}',
  `"${'M'.repeat(1100)}"`,
);
const BASES = [
  call(`{"name":"echo","arguments":{"a":"${LONG}","b":[1,2.5,"s",true,null,{"c":-0.0}],"d":{"e":"f"}}}`),
  `[${call(`{"name":"echo","arguments":{"a":"x","b":[1,2,{"q":"${LONG}"}]}}`)},${call(`{"arguments":[1,"${LONG}",{"z":1}],"name":"b"}`, '2')}]`,
];

describe('arguments left out of JSON.parse: bodies broken anywhere (differential)', () => {
  it('refuse or accept alike, and never forward a repeated key', () => {
    fc.assert(
      fc.property(
        fc.nat(BASES.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(2), PIECE), { minLength: 1, maxLength: 3 }),
        (base, edits) => {
          const text = applyEdits(BASES[base] as string, edits);
          alike(text);
        },
      ),
      { numRuns: 1500 },
    );
  });
});
