/**
 * Differential fuzz of the small-response path (integrity/small-match.ts: a strict byte scan and a
 * byte compare with the exchange's own tag) against the parsed path (strict decode, JSON.parse,
 * restore.ts) and against what a client's JSON.parse reads in the bytes it gets.
 *
 * Bodies are responses to a one-request exchange, written with what a scanner may read differently
 * from JSON.parse: the id repeated, an "id" nested in the result, keys spelled with escapes
 * (`"\u0069d"`), the tag spelled with an escape, ids of other exchanges, forged tags, the tag with
 * one byte changed, `method`/`error`/`_meta` members, whitespace everywhere, a byte order mark,
 * invalid UTF-8, raw control characters, truncation, trailing bytes, batches, nesting at the depth
 * limit, and non-ASCII text before and after the id. The exchanges include one whose request was a
 * cancellation (it forwarded no request, so a response to the cancelled request's tag is refused).
 *
 * For every body: the gateway's rewrite (which takes the small path when it applies) and the parsed
 * path accept or refuse it alike and, when they accept, give the client the same bytes; the small
 * path alone never accepts a body the parsed path refuses, and answers only with those same bytes.
 * The seed is fixed, so a failure is reproducible.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { createMatchRewrite, exchangeIds } from '../../../src/integrity/match.ts';
import type { ResponseIds } from '../../../src/integrity/match.ts';
import { parsedJsonPath } from '../../helpers/parsed-path.ts';
import { matchSmallResponse } from '../../../src/integrity/small-match.ts';
import { exchange } from '../../helpers/exchange.ts';

const SEED = 0x11c0de;
const RUNS = 3000;

const filters = { grants: compileGrants({ allow: ['*'], prompts: ['*'], resources: [] }), tasks: undefined };
const strict = new TextDecoder('utf-8', { fatal: true });

const CLIENT_IDS: JsonRpcId[] = [7, 0, -3, 9007199254740991, 'call-1', '"id"', 'é😀', 'é\ud800', ''];

// ---- the pieces a body is written with ----------------------------------------------------------

const ws = fc.constantFrom('', '', '', '', ' ', '\n', '\t', '\r\n  ');

/** A key as JSON text: plain, or with one or all of its characters written as \uXXXX. */
function spell(key: string, how: number): string {
  const esc = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  if (key === '') return '""';
  if (how === 1) return `"${esc(key[0]!)}${key.slice(1)}"`;
  if (how === 2) return `"${[...key].map(esc).join('')}"`;
  return `"${key}"`;
}
const spelling = fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2);

/** Id values as JSON text; @TAG@ and the others are filled in per exchange. */
const idValue = fc.oneof(
  { weight: 30, arbitrary: fc.constant('"@TAG@"') },
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '"@TAGESC@"',
      '"@OTHER@"',
      '"@FORGED@"',
      '"@FOREIGN@"',
      '"@TAG@ "',
      '"@TAG@x"',
      '"@TAGCUT@"',
      '7',
      'null',
      '"7"',
      '["@TAG@"]',
    ),
  },
  { weight: 4, arbitrary: fc.nat().map((n) => `"@FLIP${n}@"`) },
);

const NUMBERS = ['0', '-0', '1e400', '123456789012345678901234567890', '1.0', '1E-7'];
/** JSON nested `depth` levels (around the scanners' limit of 64). */
const nested = fc.integer({ min: 58, max: 68 }).map((depth) => `${'['.repeat(depth)}1${']'.repeat(depth)}`);
const junk = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...NUMBERS, 'true', 'false', 'null', '"x"', '"\\u0000"', '"é😀"') },
  { weight: 3, arbitrary: fc.constantFrom('[]', '{}', '{"id":"@TAG@"}', '{"\\u0069d":1}', '[{"a":[[]]}]') },
  { weight: 1, arbitrary: nested },
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
);

const member = (key: fc.Arbitrary<string>, value: fc.Arbitrary<string>) =>
  fc
    .tuple(ws, key, spelling, ws, ws, value, ws)
    .map(([a, k, how, b, c, v, d]) => `${a}${spell(k, how)}${b}:${c}${v}${d}`);

const object = (members: fc.Arbitrary<string[]>) => members.map((ms) => `{${ms.join(',')}}`);

/** The result: content as the SDK writes it, with extra members, a nested "id", a `_meta`. */
const resultMember = fc.oneof(
  { weight: 8, arbitrary: member(fc.constant('content'), fc.constant('[{"type":"text","text":"ok é"}]')) },
  { weight: 3, arbitrary: member(fc.constantFrom('id', 'method', 'error', 'jsonrpc'), junk) },
  {
    weight: 2,
    arbitrary: member(
      fc.constant('_meta'),
      fc.constantFrom('{}', '{"io.modelcontextprotocol/subscriptionId":"@TAG@"}', '{"a":1}'),
    ),
  },
  { weight: 3, arbitrary: member(fc.string({ maxLength: 6 }), junk) },
  // Long enough for the word-at-a-time string walk (escapes, quotes, controls and all).
  {
    weight: 3,
    arbitrary: member(
      fc.constant('text'),
      fc.string({ unit: 'binary', minLength: 250, maxLength: 600 }).map((t) => JSON.stringify(t)),
    ),
  },
);
const resultValue = fc.oneof(
  { weight: 12, arbitrary: object(fc.array(resultMember, { maxLength: 4 })) },
  { weight: 1, arbitrary: junk },
);

const topMember = fc.oneof(
  { weight: 10, arbitrary: member(fc.constant('id'), idValue) },
  { weight: 10, arbitrary: member(fc.constant('result'), resultValue) },
  { weight: 6, arbitrary: member(fc.constant('jsonrpc'), fc.constantFrom('"2.0"', '"1.0"', '2')) },
  { weight: 2, arbitrary: member(fc.constantFrom('method', 'error', '_meta', 'params'), junk) },
  { weight: 2, arbitrary: member(fc.string({ maxLength: 4 }), junk) },
);
/** Mostly the plain shape (jsonrpc, id, result in some order), sometimes anything. */
const plain = fc
  .tuple(
    member(fc.constant('jsonrpc'), fc.constant('"2.0"')),
    member(fc.constant('id'), idValue),
    member(fc.constant('result'), resultValue),
    fc.array(topMember, { maxLength: 2 }),
  )
  .chain(([a, b, c, extra]) => fc.shuffledSubarray([a, b, c, ...extra], { minLength: 2 }))
  .map((ms) => `{${ms.join(',')}}`);
/** An error's value: what servers write, and other values (the parsed path reads nothing in it). */
const errorValue = fc.oneof(
  { weight: 6, arbitrary: fc.constant('{"code":-32602,"message":"Unknown tool: é"}') },
  { weight: 2, arbitrary: object(fc.array(resultMember, { maxLength: 3 })) },
  { weight: 1, arbitrary: junk },
);
/** The SDK's shape: all three, in any order, with the usual content (a result or an error). */
const sdk = fc
  .tuple(
    member(fc.constant('jsonrpc'), fc.constant('"2.0"')),
    member(fc.constant('id'), idValue),
    fc.oneof(
      { weight: 3, arbitrary: member(fc.constant('result'), resultValue) },
      { weight: 1, arbitrary: member(fc.constant('error'), errorValue) },
    ),
  )
  .chain((ms) => fc.shuffledSubarray(ms, { minLength: 3 }))
  .map((ms) => `{${ms.join(',')}}`);
const anyObject = object(fc.array(topMember, { maxLength: 5 }));
const body = fc.oneof(
  { weight: 20, arbitrary: sdk },
  { weight: 10, arbitrary: plain },
  { weight: 3, arbitrary: anyObject },
  { weight: 1, arbitrary: plain.map((b) => `[${b}]`) },
  { weight: 1, arbitrary: junk },
);

/** Damage to the bytes: none mostly, else a BOM, trailing bytes, invalid UTF-8, a cut, a control. */
type Damage = [number, number];
const damage = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Damage>([0, 0]) },
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 1, max: 7 }), fc.nat()) },
);
const INVALID = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]];
function damaged(text: string, [kind, at]: Damage): Buffer {
  const b = Buffer.from(text);
  const k = b.length === 0 ? 0 : at % b.length;
  switch (kind) {
    case 1:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]);
    case 2:
      return Buffer.concat([b, Buffer.from(at % 2 === 0 ? ' x' : '{}')]);
    case 3:
      return Buffer.concat([b.subarray(0, k), Buffer.from(INVALID[at % INVALID.length]!), b.subarray(k)]);
    case 4:
      return b.subarray(0, k);
    case 5:
      return Buffer.concat([b.subarray(0, k), Buffer.from([at % 0x20]), b.subarray(k)]);
    case 6:
      return Buffer.concat([Buffer.from(' \n'), b, Buffer.from('\t ')]);
    case 7:
      return Buffer.concat([Buffer.from('\u2028'), b]);
    default:
      return b;
  }
}

function fill(text: string, x: ReturnType<typeof exchange>): string {
  const flip = (n: number) => {
    const i = n % x.tag.length;
    const c = x.tag.charCodeAt(i);
    return `${x.tag.slice(0, i)}${String.fromCharCode(c === 0x41 ? 0x42 : 0x41)}${x.tag.slice(i + 1)}`;
  };
  return text
    .replaceAll('@TAGESC@', `\\u${x.tag.charCodeAt(0).toString(16).padStart(4, '0')}${x.tag.slice(1)}`)
    .replaceAll('@TAGCUT@', x.tag.slice(0, -1))
    .replaceAll('@TAG@', x.tag)
    .replaceAll('@OTHER@', x.other)
    .replaceAll('@FORGED@', x.forged)
    .replaceAll('@FOREIGN@', x.foreign)
    .replace(/@FLIP(\d+)@/g, (_, n: string) => flip(Number(n)));
}

/** The same bytes at a given offset in memory (longer bodies are read a word at a time when aligned). */
function at(bytes: Buffer, offset: number): Buffer {
  const room = Buffer.alloc(bytes.length + offset + 8);
  bytes.copy(room, offset);
  return room.subarray(offset, offset + bytes.length);
}

// ---- the paths ----------------------------------------------------------------------------------

type Outcome = { refused: true } | { refused: false; bytes: Buffer };

/** A rewrite's bytes, or refused when it throws ERR_UPSTREAM_PROTOCOL (a 502 for the client). */
function outcome(rewrite: () => Buffer): Outcome {
  try {
    return { refused: false, bytes: rewrite() };
  } catch (err) {
    if (isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL') return { refused: true };
    throw err;
  }
}

/** The gateway's rewrite of a JSON body (small bodies take the small path when it applies). */
function gateway(bytes: Buffer, ids: ResponseIds): Outcome {
  return outcome(() => createMatchRewrite(ids, filters).json(bytes));
}

/** The reference: the parsed path of match.ts (test/helpers/parsed-path.ts). */
function parsedPath(bytes: Buffer, ids: ResponseIds): Outcome {
  // An empty body carries no response (match.ts passes it as it is).
  if (bytes.length === 0) return { refused: false, bytes };
  return outcome(() => parsedJsonPath(bytes, ids, filters.grants));
}

describe('small-response path: differential fuzz against the parsed path', () => {
  it('accepts and refuses every body as the parsed path does, and gives the client the same bytes', () => {
    let small = 0;
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        body,
        damage,
        fc.constantFrom(...CLIENT_IDS),
        fc.constantFrom<'call' | 'list' | 'cancel'>(
          'call',
          'call',
          'call',
          'call',
          'call',
          'call',
          'list',
          'cancel',
        ),
        fc.constantFrom(0, 0, 1, 2, 3),
        (text, hurt, clientId, kind, offset) => {
          const x = exchange(clientId, kind);
          const bytes = damaged(fill(text, x), hurt);
          const shown = bytes.toString('latin1');
          const reference = parsedPath(bytes, exchangeIds(x.tags));
          const fast = matchSmallResponse(at(bytes, offset), exchangeIds(x.tags));
          if (fast !== undefined) {
            small++;
            assert.equal(
              reference.refused,
              false,
              `the small path accepts what the parsed path refuses:\n${shown}`,
            );
            if (!reference.refused) assert.deepEqual(fast, reference.bytes, shown);
            // The client reads its own id, and the rest of the message as the upstream wrote it.
            const read = JSON.parse(strict.decode(fast)) as Record<string, unknown>;
            assert.deepEqual(read.id, clientId);
            assert.deepEqual({ ...read, id: 0 }, { ...(JSON.parse(strict.decode(bytes)) as object), id: 0 });
          }
          const whole = gateway(bytes, exchangeIds(x.tags));
          assert.equal(whole.refused, reference.refused, `accepted by one path only:\n${shown}`);
          if (!whole.refused && !reference.refused) assert.deepEqual(whole.bytes, reference.bytes, shown);
          if (whole.refused) refused++;
          else accepted++;
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    assert.ok(small > RUNS / 10, `enough bodies take the small path (${small})`);
    assert.ok(accepted > small, `the parsed path accepts shapes the small path leaves to it (${accepted})`);
    assert.ok(refused > RUNS / 5, `enough bodies are refused (${refused})`);
  });
});

describe('small-response path: named hostile responses', () => {
  const x = exchange(7, 'call');
  const ok = `{"jsonrpc":"2.0","id":"${x.tag}","result":{"content":[]}}`;
  // What each is, and whether the parsed path accepts it (an escaped key name, a batch and a BOM
  // are valid; the small path leaves them to it all the same).
  const cases: [string, string, boolean][] = [
    ['the id twice', `{"jsonrpc":"2.0","id":"${x.tag}","result":{},"id":"${x.tag}"}`, false],
    ['the id escaped', `{"jsonrpc":"2.0","\\u0069d":"${x.tag}","result":{}}`, true],
    ['the tag escaped', `{"jsonrpc":"2.0","id":"\\u0067${x.tag.slice(1)}","result":{}}`, true],
    ['the id only nested in the result', `{"jsonrpc":"2.0","result":{"id":"${x.tag}"}}`, false],
    ['a tag of another exchange', `{"jsonrpc":"2.0","id":"${x.other}","result":{}}`, false],
    ['a forged tag', `{"jsonrpc":"2.0","id":"${x.forged}","result":{}}`, false],
    ['a tag signed for another key', `{"jsonrpc":"2.0","id":"${x.foreign}","result":{}}`, false],
    [
      'a tag with one byte changed',
      `{"jsonrpc":"2.0","id":"${x.tag.slice(0, -1)}${x.tag.endsWith('A') ? 'B' : 'A'}","result":{}}`,
      false,
    ],
    [
      'a subscription id in result._meta',
      `{"id":"${x.tag}","result":{"_meta":{"io.modelcontextprotocol/subscriptionId":"x"}}}`,
      false,
    ],
    ['a batch', `[${ok}]`, true],
    ['trailing garbage', `${ok}x`, false],
    ['a second value', `${ok}{}`, false],
    ['a byte order mark', `\ufeff${ok}`, true],
    ['an error with a method', `{"jsonrpc":"2.0","id":"${x.tag}","method":"x","error":{}}`, false],
    ['an error that is a string', `{"jsonrpc":"2.0","id":"${x.tag}","error":"bad"}`, true],
  ];
  for (const [name, text, parsedAccepts] of cases) {
    it(`leaves ${name} to the parsed path`, () => {
      const bytes = Buffer.from(text);
      assert.equal(matchSmallResponse(bytes, exchangeIds(x.tags)), undefined);
      const reference = parsedPath(bytes, exchangeIds(x.tags));
      assert.equal(reference.refused, !parsedAccepts);
      assert.deepEqual(gateway(bytes, exchangeIds(x.tags)), reference);
    });
  }

  it('answers an error response by its bytes too, once', () => {
    const ids = exchangeIds(x.tags);
    const error = Buffer.from(`{"jsonrpc":"2.0","id":"${x.tag}","error":{"code":-32602,"message":"no"}}`);
    assert.equal(
      matchSmallResponse(error, ids)?.toString(),
      '{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}',
    );
    assert.equal(matchSmallResponse(error, ids), undefined);
  });

  it('answers the plain response once, with the client id spliced into the same bytes', () => {
    const ids = exchangeIds(x.tags);
    const out = matchSmallResponse(Buffer.from(ok), ids);
    assert.equal(out?.toString(), '{"jsonrpc":"2.0","id":7,"result":{"content":[]}}');
    assert.equal(matchSmallResponse(Buffer.from(ok), ids), undefined);
    assert.equal(gateway(Buffer.from(ok), ids).refused, true);
  });

  it('leaves a long body read byte by byte (memory not 4-aligned) to the parsed path, same bytes out', () => {
    const long = Buffer.from(`{"jsonrpc":"2.0","id":"${x.tag}","result":{"text":"${'plain '.repeat(300)}"}}`);
    for (const offset of [0, 1]) {
      const bytes = at(long, offset);
      const small = matchSmallResponse(bytes, exchangeIds(x.tags));
      assert.equal(small === undefined, offset === 1);
      const whole = gateway(bytes, exchangeIds(x.tags));
      assert.deepEqual(whole, parsedPath(bytes, exchangeIds(x.tags)));
      assert.equal(whole.refused, false);
    }
  });

  it('refuses a response to a cancelled request on the cancellation exchange', () => {
    const c = exchange(7, 'cancel');
    const bytes = Buffer.from(`{"jsonrpc":"2.0","id":"${c.tag}","result":{}}`);
    assert.equal(c.tags.size, 0);
    assert.equal(matchSmallResponse(bytes, exchangeIds(c.tags)), undefined);
    assert.equal(gateway(bytes, exchangeIds(c.tags)).refused, true);
  });
});
