/**
 * Differential fuzz of the one-pass list path (integrity/list-match.ts, policy/list-scan.ts,
 * jsonrpc/strict-skip.ts) against the parsed path (JSON.parse, restore.ts, filter-list.ts) and
 * against what a client's JSON.parse reads in the bytes it gets.
 *
 * Bodies are tools/list and prompts/list responses large enough for the list path, written with the
 * tricks a scanner may read differently from JSON.parse: duplicate keys, keys and values spelled
 * with escapes, whitespace everywhere, a byte order mark, invalid UTF-8 (overlong, surrogate,
 * truncated), odd numbers, nesting at the depth limit, `tools` both in `result` and deeper, a name
 * repeated or not a string, ids of every kind and place, trailing bytes or a second value.
 *
 * For every body: the list path and the parsed path accept or refuse it alike; when accepted, the
 * client reads the same id and the same names in the planned list, and never a name the key may not
 * see. Before each body, its sibling (the same text for another exchange: other tags, of other
 * lengths, and undamaged) goes through the list path, so the body is often one the scan memo
 * (policy/list-scan-memo.ts) remembers with another id, and when damaged, one that is not. The seed
 * is fixed, so a failure is reproducible.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import type { Grants } from '../../../src/policy/grants.ts';
import { UNREADABLE } from '../../../src/policy/unreadable.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import type { Untagged } from '../../../src/integrity/request-tag.ts';
import { createMatchRewrite, exchangeIds, matchEventData } from '../../../src/integrity/match.ts';
import { restoreIds } from '../../../src/integrity/restore.ts';
import { rewriteEventData } from '../../../src/policy/filter-list.ts';
import { parsedJsonPath } from '../../helpers/parsed-path.ts';
import type { ResponseIds } from '../../../src/integrity/match.ts';
import { LIST_MIN_BYTES } from '../../../src/integrity/list-match.ts';
import { NOT_JSON, OTHER, scanListResponse } from '../../../src/policy/list-scan.ts';
import { memoHits } from '../../../src/policy/list-scan-memo.ts';

const SEED = 0x5eed14;
const RUNS = 1500;

const tagger = createRequestTagger(Buffer.alloc(32, 7), { random: () => Buffer.alloc(6, 1) });
const GRANTS: Record<string, Grants> = {
  half: compileGrants({ allow: ['echo*'], prompts: ['echo*'], resources: [] }),
  every: compileGrants({ allow: ['*'], prompts: ['*'], resources: [] }),
  none: compileGrants({ allow: [], prompts: [], resources: [] }),
};

// ---- the pieces a body is written with ----------------------------------------------------------

const ws = fc.constantFrom('', '', '', '', ' ', '\n', '\t', '\r\n  ');

/** A key as JSON text: plain, or with some or all of its characters written as \uXXXX. */
function spell(key: string, how: number): string {
  const esc = (c: string, upper: boolean) => {
    const hex = c.charCodeAt(0).toString(16).padStart(4, '0');
    return `\\u${upper ? hex.toUpperCase() : hex}`;
  };
  if (how === 1) return `"${esc(key[0]!, false)}${key.slice(1)}"`;
  if (how === 2) return `"${[...key].map((c) => esc(c, true)).join('')}"`;
  if (how === 3) return `"${key.slice(0, -1)}${esc(key.at(-1)!, false)}"`;
  return `"${key}"`;
}
const spelling = fc.constantFrom(0, 0, 0, 0, 1, 2, 3);

const member = (key: fc.Arbitrary<string>, value: fc.Arbitrary<string>) =>
  fc
    .tuple(ws, key, spelling, ws, ws, value, ws)
    .map(([a, k, how, b, c, v, d]) => `${a}${spell(k, how)}${b}:${c}${v}${d}`);

const NUMBERS = ['0', '-0', '1e400', '-1e400', '123456789012345678901234567890', '1.0', '1E-7', '-0.0e+0'];
const number = fc.constantFrom(...NUMBERS);
/** JSON nested `depth` levels (around the scanners' limit of 64). */
const nested = fc.integer({ min: 55, max: 70 }).map((depth) => `${'['.repeat(depth)}1${']'.repeat(depth)}`);
const scalar = fc.oneof(number, fc.constantFrom('true', 'false', 'null', '"x"', '""', '"\\u0000"'));
const junk = fc.oneof(
  { weight: 12, arbitrary: scalar },
  { weight: 3, arbitrary: fc.constantFrom('[]', '{}', '[[[[{"a":[[[]]]}]]]]') },
  { weight: 1, arbitrary: nested },
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
);

/** Names as JSON text: allowed for `echo*`, denied, spelled with escapes, odd or not strings. */
const nameValue = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('"echo_a"', '"echo_b"', '"echo_é"', '"echo_😀"', '"echo"') },
  { weight: 6, arbitrary: fc.constantFrom('"secret_x"', '"Echo_c"', '"xecho"', '"secret_😀"', '" echo"') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '"\\u0065cho_esc"',
      '"\\u0073ecret_esc"',
      '"echo_\\ud800"',
      '"secret_\\udc00"',
      '"\\ud83d\\ude00echo"',
      '"echo\\u0000"',
      '"echo\\/x"',
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom('7', 'null', 'true', '["echo_a"]', '{"name":"echo_a"}') },
);

const PAD = `"${'Reads the thing and answers with what it found there. '.repeat(3)}"`;
const schema = fc
  .tuple(junk, number)
  .map(
    ([x, n]) =>
      `{"type":"object","properties":{"q":{"type":"string","default":${n}},"tools":[{"name":"secret_nested"}]},"x":${x}}`,
  );
const entryMember = fc.oneof(
  { weight: 3, arbitrary: member(fc.constant('description'), fc.constant(PAD)) },
  { weight: 2, arbitrary: member(fc.constant('inputSchema'), schema) },
  { weight: 1, arbitrary: member(fc.constantFrom('title', 'tools', 'id', 'result', 'names', 'Name'), junk) },
);
const objectEntry = fc
  .tuple(
    fc.oneof(
      {
        weight: 40,
        arbitrary: fc.array(member(fc.constant('name'), nameValue), { minLength: 1, maxLength: 1 }),
      },
      { weight: 1, arbitrary: fc.array(member(fc.constant('name'), nameValue), { maxLength: 2 }) },
    ),
    fc.array(entryMember, { maxLength: 3 }),
    fc.nat(),
  )
  .map(([names, rest, at]) => {
    const all = [...rest];
    for (const n of names) all.splice(at % (all.length + 1), 0, n);
    return `{${all.join(',')}}`;
  });
const entry = fc.oneof(
  { weight: 12, arbitrary: objectEntry },
  { weight: 1, arbitrary: fc.constantFrom('"echo_str"', 'null', '42', '[]', '[{"name":"secret_arr"}]') },
);
const list = fc
  .tuple(ws, fc.array(fc.tuple(ws, entry, ws), { maxLength: 12 }), ws)
  .map(([a, items, b]) => `[${a}${items.map(([x, e, y]) => `${x}${e}${y}`).join(',')}${b}]`);

/** A list member of `result`: usually an array, sometimes not (the parsed path then empties it). */
const listValue = fc.oneof({ weight: 12, arbitrary: list }, { weight: 1, arbitrary: junk });
const meta = fc.constantFrom(
  '{}',
  '{"progressToken":1}',
  '{"io.modelcontextprotocol/subscriptionId":"@TAG@"}',
  '{"io.modelcontextprotocol/subscriptionId":"zz"}',
);
const resultMember = fc.oneof(
  { weight: 2, arbitrary: member(fc.constantFrom('tools', 'prompts'), listValue) },
  { weight: 2, arbitrary: member(fc.constant('nextCursor'), fc.constantFrom('"c2"', '1', 'null')) },
  { weight: 1, arbitrary: member(fc.constant('_meta'), meta) },
  {
    weight: 1,
    arbitrary: member(
      fc.constantFrom('nested', 'result'),
      list.map((l) => `{"tools":${l},"prompts":${l}}`),
    ),
  },
  { weight: 1, arbitrary: member(fc.constantFrom('x', 'id'), junk) },
);
const resultValue = fc.oneof(
  {
    weight: 20,
    arbitrary: fc
      .tuple(
        member(fc.constantFrom('tools', 'prompts'), list),
        fc.array(resultMember, { maxLength: 2 }),
        fc.nat(),
      )
      .map(([first, rest, at]) => {
        const all = [...rest];
        all.splice(at % (all.length + 1), 0, first);
        return `{${all.join(',')}}`;
      }),
  },
  { weight: 1, arbitrary: junk },
);

/** Ids as JSON text; @TAG@ etc. are put in per run (tags are fresh for each exchange). */
const idValue = fc.oneof(
  { weight: 12, arbitrary: fc.constant('"@TAG@"') },
  { weight: 2, arbitrary: fc.constant('"@TAGESC@"') },
  { weight: 2, arbitrary: fc.constant('"@PROMPTS@"') },
  { weight: 3, arbitrary: fc.constant('"@NONE@"') },
  { weight: 1, arbitrary: fc.constant('"@TASK@"') },
  { weight: 1, arbitrary: fc.constant('"@FORGED@"') },
  { weight: 1, arbitrary: fc.constantFrom('"list-1"', '5', '5.0', 'null', '["@TAG@"]', '{"id":"@TAG@"}') },
);
const topMember = fc.oneof(
  { weight: 2, arbitrary: member(fc.constant('jsonrpc'), fc.constantFrom('"2.0"', '"1.0"')) },
  { weight: 1, arbitrary: member(fc.constantFrom('method', 'error', 'x', 'params'), junk) },
  { weight: 1, arbitrary: member(fc.constantFrom('id', 'i\u0064'), idValue) },
  { weight: 1, arbitrary: member(fc.constant('result'), resultValue) },
);
const body = fc
  .tuple(
    member(fc.constant('id'), idValue),
    member(fc.constant('result'), resultValue),
    fc.array(topMember, { maxLength: 2 }),
    fc.nat(),
    fc.nat(),
    ws,
    ws,
  )
  .map(([id, result, rest, at1, at2, lead, trail]) => {
    const all = [...rest];
    all.splice(at1 % (all.length + 1), 0, result);
    all.splice(at2 % (all.length + 1), 0, id);
    // Long enough for the list path whatever else was drawn.
    all.splice(at1 % (all.length + 1), 0, `"pad":"${'p'.repeat(LIST_MIN_BYTES)}"`);
    return `${lead}{${all.join(',')}}${trail}`;
  });

/** Damage to the bytes, applied after the ids are put in. */
type Damage = readonly [kind: number, at: number];
const damage = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Damage>([0, 0]) },
  { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 1, max: 10 }), fc.nat()) },
);
const INVALID = [
  [0xff],
  [0xc0, 0xaf], // overlong '/'
  [0xe0, 0x80, 0xaf], // overlong
  [0xed, 0xa0, 0x80], // a surrogate written as UTF-8
  [0xe2, 0x82], // truncated
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
];
function damaged(text: string, [kind, at]: Damage): Buffer {
  const b = Buffer.from(text);
  const quoteAt = (n: number) => {
    // somewhere inside a string: just after a quote
    let k = n % b.length;
    while (k < b.length && b[k] !== 0x22) k++;
    return Math.min(k + 1, b.length);
  };
  switch (kind) {
    case 0:
      return b;
    case 1:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b]);
    case 2:
      return Buffer.concat([b, Buffer.from(' x')]);
    case 3:
      return Buffer.concat([b, Buffer.from('{}')]);
    case 4: {
      const k = quoteAt(at);
      return Buffer.concat([b.subarray(0, k), Buffer.from(INVALID[at % INVALID.length]!), b.subarray(k)]);
    }
    case 5:
      return b.subarray(0, b.length - 1 - (at % 3));
    case 6: {
      const k = quoteAt(at);
      return Buffer.concat([b.subarray(0, k), Buffer.from([at % 0x20]), b.subarray(k)]);
    }
    case 7:
      return Buffer.concat([b, Buffer.from('\u00a0')]);
    case 8:
      return Buffer.concat([Buffer.from('\u2028'), b]);
    case 9: {
      // One byte of a string changed, the length kept (a name, a key, a tag: what a memo compares).
      const k = quoteAt(at);
      if (k < b.length && b[k] !== 0x22 && b[k] !== 0x5c) b[k] = 0x61 + (at % 26);
      return b;
    }
    default:
      return Buffer.concat([b, Buffer.from([0])]);
  }
}

// ---- one exchange, both paths, and the client's reading ----------------------------------------

const CLIENT_IDS: JsonRpcId[] = ['list-1', 5, 'g1tAAAAAAAA1.sbGlzdA.AAAAAAAAAAAAAAAA', '"id"', 'é\ud800'];

function exchange(clientId: JsonRpcId) {
  const tag = tagger.tag('key-a', clientId, 'tools');
  const prompts = tagger.tag('key-a', 'p-1', 'prompts');
  const none = tagger.tag('key-a', 'c-1', 'none');
  const task = tagger.tag('key-a', 't-1', { tool: 'echo' });
  const forged = tagger.tag('key-b', clientId, 'tools');
  const tags = new Map<string, Untagged>([
    [tag, { clientId, plan: 'tools' }],
    [prompts, { clientId: 'p-1', plan: 'prompts' }],
    [none, { clientId: 'c-1', plan: 'none' }],
    [task, { clientId: 't-1', plan: { tool: 'echo' } }],
  ]);
  return { tag, prompts, none, task, forged, tags };
}

function fill(text: string, x: ReturnType<typeof exchange>): string {
  const escFirst = `\\u${x.tag.charCodeAt(0).toString(16).padStart(4, '0')}${x.tag.slice(1)}`;
  return text
    .replaceAll('@TAGESC@', escFirst)
    .replaceAll('@TAG@', x.tag)
    .replaceAll('@PROMPTS@', x.prompts)
    .replaceAll('@NONE@', x.none)
    .replaceAll('@TASK@', x.task)
    .replaceAll('@FORGED@', x.forged);
}

type Outcome =
  | { readonly refused: true }
  | { readonly refused: false; readonly id: unknown; readonly tools: unknown; readonly prompts: unknown };

const strict = new TextDecoder('utf-8', { fatal: true });

/** The names a client reads in a list: of the entries that are objects with a string name. */
function namesIn(result: unknown, kind: string): unknown {
  if (typeof result !== 'object' || result === null || !Object.hasOwn(result, kind)) return undefined;
  const l = (result as Record<string, unknown>)[kind];
  if (!Array.isArray(l)) return l;
  return l.flatMap((e: unknown) => {
    const name =
      typeof e === 'object' && e !== null && !Array.isArray(e) ? (e as { name?: unknown }).name : undefined;
    return typeof name === 'string' ? [name] : [];
  });
}

/** What a client reads: the id, and the names in each list of the result. */
function read(out: string): Outcome {
  const value = JSON.parse(out) as Record<string, unknown>;
  return {
    refused: false,
    id: value.id,
    tools: namesIn(value.result, 'tools'),
    prompts: namesIn(value.result, 'prompts'),
  };
}

type Rewrite = (bytes: Buffer, ids: ResponseIds, grants: Grants) => Buffer;
type EventRewrite = (data: string, ids: ResponseIds, grants: Grants) => string | undefined;

/** The gateway's rewrite: large bodies take the one-pass path. */
const gateway: Rewrite = (bytes, ids, grants) =>
  createMatchRewrite(ids, { grants, tasks: undefined }).json(bytes);
const gatewayEvent: EventRewrite = (data, ids, grants) =>
  matchEventData(data, ids, { grants, tasks: undefined });

/** The reference: the parsed path of match.ts (test/helpers/parsed-path.ts). */
const parsedPath: Rewrite = parsedJsonPath;
const parsedEvent: EventRewrite = (data, ids, grants) => {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return UNREADABLE;
  }
  const restored = restoreIds(data, value, ids);
  if (restored === undefined) return UNREADABLE;
  if (restored.plans !== undefined) {
    const filtered = rewriteEventData(restored.text, restored.plans, grants);
    if (filtered !== undefined) return filtered;
  }
  return restored.text === data ? undefined : restored.text;
};

function runJson(rewrite: Rewrite, bytes: Buffer, ids: ResponseIds, grants: Grants): Outcome {
  let out: Buffer;
  try {
    out = rewrite(bytes, ids, grants);
  } catch (err) {
    if (isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL') return { refused: true };
    throw err;
  }
  // Whatever passes must be strict UTF-8 JSON to the client.
  return read(strict.decode(out));
}

function runEvent(rewrite: EventRewrite, data: string, ids: ResponseIds, grants: Grants): Outcome {
  const out = rewrite(data, ids, grants);
  if (out === UNREADABLE) return { refused: true };
  return read(out ?? data);
}

/** The same bytes at a given offset in memory (the scan reads 4-aligned bodies a word at a time). */
function at(bytes: Buffer, offset: number): Buffer {
  const room = Buffer.alloc(bytes.length + offset + 8);
  bytes.copy(room, offset);
  return room.subarray(offset, offset + bytes.length);
}

/** The list planned for the id the client reads back holds only names the key may see. */
function checkSafe(o: Outcome, grants: Grants, clientId: JsonRpcId) {
  if (o.refused) return;
  const [names, allowed] =
    o.id === clientId
      ? [o.tools, grants.tool]
      : o.id === 'p-1'
        ? [o.prompts, grants.prompt]
        : [undefined, undefined];
  if (!Array.isArray(names) || allowed === undefined) return;
  for (const name of names as string[]) assert.ok(allowed(name), `the client sees ${name}`);
}

/** A body for a failure message, its padding cut short. */
const show = (text: string) => text.replace(/p{40,}/g, 'p…');

function same(a: Outcome, b: Outcome, text: string) {
  const what = show(text);
  assert.equal(a.refused, b.refused, `accepted by one path only:\n${what}`);
  if (a.refused || b.refused) return;
  assert.deepEqual(a.id, b.id, what);
  assert.deepEqual(a.tools, b.tools, what);
  assert.deepEqual(a.prompts, b.prompts, what);
}

describe('list path: differential fuzz against the parsed path and JSON.parse', () => {
  it('accepts, refuses and filters every body exactly as the parsed path does, never showing a denied name', () => {
    let listed = 0;
    let accepted = 0;
    let scannedPlain = 0;
    let remembered = 0;
    fc.assert(
      fc.property(
        body,
        damage,
        fc.constantFrom('half', 'half', 'every', 'none'),
        fc.constantFrom(...CLIENT_IDS),
        fc.constantFrom(0, 0, 1, 2, 3, 4),
        fc.constantFrom(...CLIENT_IDS),
        (text, hurt, grantsName, clientId, offset, siblingId) => {
          const grants = GRANTS[grantsName]!;
          const x = exchange(clientId);
          const sibling = exchange(siblingId);
          runJson(gateway, Buffer.from(fill(text, sibling)), exchangeIds(sibling.tags), grants);
          const bytes = damaged(fill(text, x), hurt);
          const shown = bytes.toString('latin1');
          const scanned = scanListResponse(bytes);
          if (scanned !== OTHER && scanned !== NOT_JSON) scannedPlain++;
          const hits = memoHits();
          const fast = runJson(gateway, at(bytes, offset), exchangeIds(x.tags), grants);
          if (memoHits() > hits) remembered++;
          const reference = runJson(parsedPath, bytes, exchangeIds(x.tags), grants);
          same(fast, reference, shown);
          checkSafe(fast, grants, clientId);
          checkSafe(reference, grants, clientId);
          if (!fast.refused) accepted++;
          if (!fast.refused && (fast.id === clientId || fast.id === 'p-1')) listed++;

          // The same body as one SSE event's data (a string: only bodies that decode as UTF-8).
          let data: string;
          try {
            data = strict.decode(bytes).replace(/[\r\n]/g, ' ');
          } catch {
            return;
          }
          const event = runEvent(gatewayEvent, data, exchangeIds(x.tags), grants);
          same(event, runEvent(parsedEvent, data, exchangeIds(x.tags), grants), data);
          checkSafe(event, grants, clientId);
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    // (An entry holding `Name` beside its name is left to the parsed path, which drops it.)
    assert.ok(scannedPlain > RUNS / 6, `enough bodies take the list path (${scannedPlain})`);
    assert.ok(accepted > RUNS / 5, `enough bodies are accepted (${accepted})`);
    assert.ok(listed > RUNS / 10, `enough accepted bodies answer a list request (${listed})`);
    assert.ok(remembered > RUNS / 10, `enough bodies are answered by the scan memo (${remembered})`);
  });
});
