/**
 * Long strings with `\u` escapes left out of JSON.parse (skeleton.ts: unicodeSkeleton), and kept
 * as the client spelled them when nothing reads them (splice.ts). Each attack is parsed with the
 * fast path forced (skeletonFrom 0) and with the whole body given to JSON.parse: both refuse alike,
 * or both accept with the same messages where a reader reads them, forwarded bytes that mean the
 * same value, and keys spelled alike; named cases then check what the fast path did.
 */
import { describe, it } from 'node:test';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import { BODY_LIMITS, parseBody } from '../../../src/jsonrpc/parse.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { applyEdits } from '../../helpers/break-body.ts';
import { readersView } from '../../helpers/reader-view.ts';

type Outcome =
  { readonly code: string; readonly id: unknown } | { readonly bytes: string; readonly read: unknown };

function outcome(text: string, skeletonFrom: number, argumentsRead = false): Outcome {
  try {
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, argumentsRead, skeletonFrom);
    return {
      bytes: parsed.bytes.toString('utf8'),
      read: argumentsRead ? parsed.messages : parsed.messages.map(readersView),
    };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return { code: err.code, id: err.rpcId };
  }
}

/** The fast path against the whole parse (arguments unread, then read); returns the fast outcome. */
function alike(text: string): Outcome {
  const fast = outcome(text, 0);
  const whole = outcome(text, Infinity);
  if ('code' in whole) assert.deepStrictEqual(fast, whole);
  else {
    assert.ok('bytes' in fast, JSON.stringify(fast));
    assert.deepStrictEqual(fast.read, whole.read);
    assert.deepStrictEqual(JSON.parse(fast.bytes), JSON.parse(whole.bytes));
    // The whole parse of the fast bytes forwards what the whole parse forwards: they differ only in
    // how strings are spelled, and only where the whole parse re-spells them.
    const again = outcome(fast.bytes, Infinity);
    assert.ok('bytes' in again);
    assert.equal(again.bytes, whole.bytes);
  }
  assert.deepStrictEqual(outcome(text, 0, true), outcome(text, Infinity, true));
  return fast;
}

const U = '\\u00e9'.repeat(400);
const call = (params: string, id = '1') =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`;

/**
 * Whether the first message's `params.arguments.k` was left unbuilt: a placeholder, or in arguments
 * left out whole (one placeholder).
 */
function unbuilt(text: string): boolean {
  const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, false, 0);
  const args = (parsed.messages[0] as unknown as { params: { arguments: unknown } }).params.arguments;
  const placeholder = (v: unknown) => typeof v === 'string' && v.charCodeAt(0) === 0;
  return placeholder(args) || placeholder((args as { k?: unknown }).k);
}

describe('long strings with \\u escapes left out of JSON.parse', () => {
  it('a long string of \\u escapes nobody reads is left unbuilt and forwarded as the client spelled it', () => {
    const text = call(`{"name":"echo","arguments":{"k":"${U}"}}`);
    const fast = alike(text);
    assert.ok('bytes' in fast);
    assert.equal(fast.bytes, text);
    assert.ok(unbuilt(text));
    // Read by the audit: built, and re-spelled as before.
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, true, 0);
    assert.equal(
      parsed.bytes.toString('utf8'),
      call(`{"name":"echo","arguments":{"k":"${'é'.repeat(400)}"}}`),
    );
  });

  it('a string spelled \\u0000 anywhere JSON.parse builds keeps the whole body', () => {
    for (const name of ['"\\u00000"', '"\\u0000"', '"x\\u0000"', '"\\u00001"']) {
      const text = call(`{"name":${name},"arguments":{"k":"${U}","j":"${U}"}}`);
      const fast = alike(text);
      assert.ok('bytes' in fast);
      assert.equal(unbuilt(text), false, name);
      assert.equal(
        (
          parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, false, 0).messages[0] as unknown as {
            params: { name: string };
          }
        ).params.name,
        JSON.parse(name) as string,
      );
    }
    // A key holding it, and the text `\u0000` behind an escaped backslash (kept whole too).
    for (const extra of ['"\\u0000":1', '"q":"\\\\u0000"', '"_meta":{"\\u0000k":"\\u00E9"}']) {
      const text = call(`{"name":"echo","${'k'}x":1,${extra},"arguments":{"k":"${U}"}}`);
      alike(text);
      assert.equal(unbuilt(text), false, extra);
    }
    // Inside the long strings themselves it is harmless: they are never parsed from the skeleton.
    const inside = call(`{"name":"echo","arguments":{"k":"${U}\\u0000${U}"}}`);
    alike(inside);
    assert.ok(unbuilt(inside));
  });

  it('escaped keys are re-spelled where read, kept in arguments nothing reads, and fold, repeat or spell __proto__ as in the whole parse', () => {
    const text = call(`{"n\\u0061me":"echo","arguments":{"\\u006b":"${U}"}}`);
    const respelled = alike(text);
    assert.ok('bytes' in respelled);
    assert.ok(respelled.bytes.includes('"name":"echo"'), 'a key JSON.parse read is re-spelled');
    assert.ok(respelled.bytes.includes(`{"\\u006b":"${U}"}`), 'the arguments go as the client spelled them');
    assert.ok(unbuilt(text), 'left out of JSON.parse');
    for (const args of [
      `{"k":"${U}","\\u004b":1}`,
      `{"k":"${U}","\\u017f":1,"S":2}`,
      `{"k":"${U}","__pr\\u006fto__":{"x":1}}`,
      `{"k":"${U}","__proto__":{"x":"${U}"}}`,
      `{"k":"${U}","k":"ls"}`,
      `{"k":"ls","\\u006b":"${U}"}`,
      `{"\\u006b":"${U}","k":"${U}é"}`,
      `{"k":{"k":"${U}","k":"${U}"},"o":[["${U}"]]}`,
    ]) {
      alike(call(`{"name":"echo","arguments":${args}}`));
    }
    // A repeated params or arguments, one spelled with an escape.
    alike(call(`{"name":"rm","arguments":{"k":"${U}"},"p\\u0061rams":1}`));
    alike(call(`{"name":"rm","arguments":{"k":"${U}"},"\\u0061rguments":{"k":"x"}}`));
    alike(
      `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm","arguments":{"k":"${U}"}},"p\\u0061rams":{"name":"echo","arguments":{"k":"${U}"}}}`,
    );
  });

  it('lone surrogates, invalid escapes and raw control bytes in a long string nobody reads', () => {
    const lone = alike(call(`{"name":"echo","arguments":{"k":"${U}\\ud800${U}\\uDC00x"}}`));
    assert.ok('bytes' in lone);
    for (const flaw of ['\\u12', '\\u12G4', '\\x', '\u0001', '\\U00e9']) {
      const refused = alike(call(`{"name":"echo","arguments":{"k":"${U}${flaw}${U}"}}`));
      assert.ok('code' in refused && refused.code === 'ERR_PARSE', JSON.stringify(flaw));
    }
  });

  it('read places, nested arguments and batches', () => {
    for (const text of [
      call(`{"name":"${U}","_meta":{"k":"${U}"},"arguments":{"k":"${U}"}}`),
      call(`{"name":"echo","arguments":{"k":[{"k":"${U}"},"${U}",{"a":{"b":"${U}"}}]}}`),
      `[${call(`{"name":"echo","arguments":{"k":"${U}"}}`)},${call(`{"name":"x\\u0041","arguments":{"k":"${U}"}}`, '2')}]`,
      `[${call(`{"name":"echo","arguments":{"k":"${U}"}}`)},{"jsonrpc":"2.0","id":"${U}","result":{"k":"${U}"}}]`,
      call(`{"name":"echo","arguments":["${U}","${U}"]}`),
      `"${U}"`,
    ]) {
      alike(text);
    }
  });
});

/** Bytes that break or reshape a body when put anywhere in it. */
const PIECE = fc.constantFrom(
  '"',
  '\\',
  '\\u',
  '\\u0000',
  '"\\u00000"',
  '\\u0041',
  '\\uD800',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '1.0',
  'é',
  '"k\\u0065y":1,',
  '"\\u0061rguments":{"x":1},',
  '"p\\u0061rams":{"name":"z"},',
  '"K":2,',
  '"__pr\\u006fto__":{},',
  `"${U}",`,
);
const BASES = [
  call(`{"name":"echo","arguments":{"k":"${U}","b":[1,2.5,"s\\u0041",true,null,{"c":-0.0}],"key":"${U}"}}`),
  `[${call(`{"name":"e\\u0063ho","arguments":{"k":"${U}","d":{"e":"f"}}}`)},${call(`{"arguments":["${U}",{"z":"${U}"}],"_meta":{"m":"${U}"},"name":"b"}`, '2')}]`,
];

describe('long strings with \\u escapes left out: bodies broken anywhere (differential)', () => {
  it('refuse or accept alike, forwarding bytes that mean the same', () => {
    let kept = 0;
    fc.assert(
      fc.property(
        fc.nat(BASES.length - 1),
        fc.array(fc.tuple(fc.nat(), fc.nat(2), PIECE), { minLength: 1, maxLength: 3 }),
        (base, edits) => {
          const text = applyEdits(BASES[base] as string, edits);
          const fast = alike(text);
          // Accepted with an unread string forwarded as the client spelled it.
          const whole = outcome(text, Infinity, true);
          if ('bytes' in fast && 'bytes' in whole && fast.bytes !== whole.bytes) kept++;
        },
      ),
      { numRuns: 1500 },
    );
    assert.ok(kept > 30, `${kept} bodies kept a \\u string as spelled`);
  });
});

describe('arguments nobody reads, holding short strings with \\u escapes', () => {
  // Large enough to be left out at the default threshold (8 x 16 KiB).
  const many = (unit: string) => `[${unit.repeat(15_000)}"z"]`;

  it('are left out whole and forwarded as the client spelled them, a view of the body', () => {
    const text = call(`{"name":"echo","arguments":{"a":${many('"x\\u00e9y",')}}}`);
    alike(text);
    const body = Buffer.from(text);
    const parsed = parseBody(body, KNOWN_METHODS, BODY_LIMITS, false);
    const args = (parsed.messages[0] as unknown as { params: { arguments: unknown } }).params.arguments;
    assert.ok(typeof args === 'string' && args.charCodeAt(0) === 0, 'a placeholder');
    assert.equal(parsed.bytes.toString('utf8'), text);
    assert.equal(parsed.bytes.buffer, body.buffer);
    // Read by the audit: built, and every string re-spelled as before.
    const read = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, true);
    assert.equal(read.bytes.toString('utf8'), call(`{"name":"echo","arguments":{"a":${many('"xéy",')}}}`));
  });

  it('are kept as spelled while a key repeated outside them is still left out', () => {
    const args = `{"a":${many('"\\u0041",')}}`;
    const text = call(`{"_meta":{"p":1},"name":"echo","_meta":{"p":2},"arguments":${args}}`);
    alike(text);
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, false);
    assert.equal(parsed.bytes.toString('utf8'), call(`{"name":"echo","_meta":{"p":2},"arguments":${args}}`));
  });

  it('with a key repeated inside them, are walked: the member replaced is left out', () => {
    const text = call(`{"name":"echo","arguments":{"k":1,"a":${many('"\\u0041",')},"k":2}}`);
    alike(text);
    const parsed = parseBody(Buffer.from(text), KNOWN_METHODS, BODY_LIMITS, false);
    const forwarded = parsed.bytes.toString('utf8');
    assert.equal(forwarded.split('"k":').length - 1, 1, 'one "k" member left');
    assert.equal((JSON.parse(forwarded) as { params: { arguments: { k: number } } }).params.arguments.k, 2);
  });
});
