/**
 * Differential fuzz of the SSE event byte path (integrity/event-match.ts, over proxy/sse-plain.ts and
 * small-match.ts) against the parsed path (every block framed and parsed, its data JSON.parsed and
 * matched by restore.ts, the block written again: test/helpers/parsed-path.ts).
 *
 * Streams are a few blocks cut into chunks anywhere. Blocks are written with what a byte reader may
 * read differently from the SSE parse: fields in another order or repeated, `event:` without its
 * space, `data:` with two spaces or none, two data lines, comments, `retry:`, an id with NUL, CR and
 * CRLF line ends, a byte order mark, invalid UTF-8 in a field, an unfinished last block. Their data
 * is a response to the exchange's one request (its tag, another exchange's, forged, escaped, a
 * result with `_meta`, an error, both), or a notification (params naming a request by `requestId`,
 * spelled with an escape, a subscription in `_meta`, params repeated, an `id`, a `result`), or junk.
 *
 * For every stream the gateway's rewriter and the parsed path write the same bytes; for every block
 * the byte path settles, it settles it as the parsed path does (the same replacement, or the block
 * passed as it is). The seed is fixed, so a failure is reproducible.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { createMatchRewrite, exchangeIds } from '../../../src/integrity/match.ts';
import { matchEventBytes, PASS } from '../../../src/integrity/event-match.ts';
import { parsedSsePath } from '../../helpers/parsed-path.ts';
import { exchange } from '../../helpers/exchange.ts';

const SEED = 0x55e1;
const RUNS = 2000;

const filters = { grants: compileGrants({ allow: ['*'], prompts: ['*'], resources: [] }), tasks: undefined };

const CLIENT_IDS: JsonRpcId[] = [7, 0, 'call-1', '"id"', 'é😀', 'é\ud800'];

// ---- data ---------------------------------------------------------------------------------------

const ws = fc.constantFrom('', '', '', ' ', '\t');
const esc = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
/** A key as JSON text, sometimes with its first character escaped. */
const key = (k: string) =>
  fc.constantFrom(`"${k}"`, `"${k}"`, `"${k}"`, `"${k}"`, `"${esc(k[0]!)}${k.slice(1)}"`);
const member = (k: fc.Arbitrary<string>, v: fc.Arbitrary<string>) =>
  fc.tuple(ws, k, ws, v).map(([a, name, b, value]) => `${a}${name}:${b}${value}`);

const junk = fc.oneof(
  fc.constantFrom('1', 'null', 'true', '"x"', '[]', '{}', '"é"', '[[[1]]]', '1e400'),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
);
const idValue = fc.constantFrom(
  '"@TAG@"',
  '"@TAG@"',
  '"@TAG@"',
  '"@OTHER@"',
  '"@FORGED@"',
  '"@TAGESC@"',
  '7',
  'null',
);
const requestIdValue = fc.constantFrom('"@TAG@"', '"@OTHER@"', '"g1xyz"', '"abc"', '7', 'null');

const params = fc.oneof(
  { weight: 8, arbitrary: fc.constant('{"progressToken":"bench","progress":0,"total":1}') },
  {
    weight: 6,
    arbitrary: fc
      .array(
        fc.oneof(
          member(fc.constantFrom('"progressToken"', '"progress"', '"message"', '"level"', '"data"'), junk),
          member(key('requestId'), requestIdValue),
          member(
            key('_meta'),
            fc.constantFrom('{}', '{"io.modelcontextprotocol/subscriptionId":"@TAG@"}', '{"a":1}'),
          ),
        ),
        { maxLength: 4 },
      )
      .map((ms) => `{${ms.join(',')}}`),
  },
  { weight: 1, arbitrary: junk },
);
const notification = fc
  .tuple(
    fc.constantFrom('notifications/progress', 'notifications/cancelled', 'notifications/message', 'x'),
    fc.array(params, { minLength: 0, maxLength: 2 }),
    fc.array(
      member(fc.constantFrom('"id"', '"result"', '"error"', '"jsonrpc"', `"${esc('i')}d"`, '"x"'), junk),
      { maxLength: 1 },
    ),
  )
  .chain(([method, ps, extra]) =>
    fc.shuffledSubarray(
      [`"jsonrpc":"2.0"`, `"method":"${method}"`, ...ps.map((p) => `"params":${p}`), ...extra],
      { minLength: 1 },
    ),
  )
  .map((ms) => `{${ms.join(',')}}`);

const resultValue = fc.oneof(
  fc.constant('{"content":[{"type":"text","text":"ok é"}]}'),
  fc.constantFrom(
    '{}',
    '{"_meta":{"io.modelcontextprotocol/subscriptionId":"@TAG@"}}',
    '{"id":"@TAG@"}',
    '[]',
  ),
  fc.string({ unit: 'binary', maxLength: 300 }).map((t) => `{"text":${JSON.stringify(t)}}`),
);
const errorValue = fc.constantFrom(
  '{"code":-32602,"message":"bad"}',
  '{}',
  '"x"',
  '{"code":1,"data":[1,{"a":null}]}',
);
const response = fc
  .tuple(
    member(key('id'), idValue),
    fc.oneof(
      member(key('result'), resultValue),
      member(key('error'), errorValue),
      fc
        .tuple(member(key('result'), resultValue), member(key('error'), errorValue))
        .map(([a, b]) => `${a},${b}`),
    ),
    fc.array(member(fc.constantFrom('"jsonrpc"', '"id"', '"method"', '"x"'), junk), { maxLength: 1 }),
  )
  .chain(([id, answer, extra]) =>
    fc.shuffledSubarray([`"jsonrpc":"2.0"`, id, answer, ...extra], { minLength: 2 }),
  )
  .map((ms) => `{${ms.join(',')}}`);

/** What servers write: the SDK's response, result or error. */
const sdkResponse = fc
  .tuple(fc.oneof(member(fc.constant('"result"'), resultValue), member(fc.constant('"error"'), errorValue)))
  .map(([answer]) => `{"jsonrpc":"2.0","id":"@TAG@",${answer}}`);

const data = fc.oneof(
  { weight: 4, arbitrary: sdkResponse },
  { weight: 6, arbitrary: response },
  { weight: 6, arbitrary: notification },
  { weight: 1, arbitrary: junk },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', 'not json', '{"a":1} x') },
);

// ---- blocks -------------------------------------------------------------------------------------

const prefix = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('event: message\n', 'event: message\nid: 42\n', '') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'id: 1\n',
      'event:message\n',
      'id: 1\nevent: message\n',
      'event: a\nevent: b\n',
      ': comment\n',
      'retry: 10\n',
      'id: a\0b\n',
      'id: 1\nid: 2\n',
      'event: message\r\n',
      'event: m\xff\n',
      'event: message\nx: y\n',
      '\ufeffevent: message\n',
      'event: \n',
    ),
  },
);
const dataLines = (d: string) =>
  fc.oneof(
    { weight: 10, arbitrary: fc.constant(`data: ${d}\n`) },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        `data:${d}\n`,
        `data:  ${d}\n`,
        `data: ${d}\r\n`,
        `data: ${d}\r`,
        `data: ${d.slice(0, 5)}\ndata: ${d.slice(5)}\n`,
        `data: ${d}\n: c\n`,
      ),
    },
  );
const end = fc.constantFrom('\n', '\n', '\n', '\n', '\r\n', '\r');
const block = fc
  .tuple(prefix, data, end)
  .chain(([p, d, e]) => dataLines(d).map((lines) => `${p}${lines}${e}`));

type Exchange = ReturnType<typeof exchange>;
function fill(text: string, x: Exchange): string {
  return text
    .replaceAll('@TAGESC@', `${esc(x.tag[0]!)}${x.tag.slice(1)}`)
    .replaceAll('@TAG@', x.tag)
    .replaceAll('@OTHER@', x.other)
    .replaceAll('@FORGED@', x.forged);
}

/** Latin-1 for the field with \xff (an invalid UTF-8 byte), UTF-8 for the rest. */
function bytesOf(text: string): Buffer {
  const at = text.indexOf('\xff');
  if (at === -1) return Buffer.from(text);
  return Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xff]), bytesOf(text.slice(at + 1))]);
}

function cut(input: Buffer, cuts: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let start = 0;
  for (const c of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (c <= start || c >= input.length) continue;
    chunks.push(input.subarray(start, c));
    start = c;
  }
  chunks.push(input.subarray(start));
  return chunks;
}

function gatewayStream(chunks: readonly Buffer[], x: Exchange): Buffer {
  const rewriter = createMatchRewrite(exchangeIds(x.tags), filters).sse();
  const out: Buffer[] = [];
  for (const chunk of chunks) out.push(...rewriter.push(chunk));
  out.push(...rewriter.end());
  return Buffer.concat(out);
}

describe('SSE event byte path: differential fuzz against the parsed path', () => {
  it('writes every stream as the parsed path does, and settles only blocks it settles alike', () => {
    let settled = 0;
    let replaced = 0;
    let passed = 0;
    let blocksSeen = 0;
    fc.assert(
      fc.property(
        fc.array(block, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.constantFrom(...CLIENT_IDS),
        fc.constantFrom<'call' | 'list'>('call', 'call', 'call', 'list'),
        (blocks, unfinished, cuts, clientId, kind) => {
          const x = exchange(clientId, kind);
          const texts = blocks.map((b) => fill(b, x));
          let stream = bytesOf(texts.join(''));
          if (unfinished) stream = stream.subarray(0, stream.length - 1);
          const shown = JSON.stringify(stream.toString('latin1'));
          const chunks = cut(
            stream,
            cuts.map((c) => c % (stream.length + 1)),
          );
          const reference = parsedSsePath(chunks, exchangeIds(x.tags), filters);
          assert.deepEqual(gatewayStream(chunks, x), reference, shown);
          // Block by block, on one exchange's ids, in order: what the byte path settles, the parsed
          // path settles alike.
          const ids = exchangeIds(x.tags);
          const refIds = exchangeIds(x.tags);
          for (const text of texts) {
            blocksSeen++;
            const raw = bytesOf(text);
            if (!raw.subarray(raw.length - 2).equals(Buffer.from('\n\n'))) continue;
            // (The block alone: not the errors a stream of this one block would owe at its end.)
            const ref = parsedSsePath([raw], refIds, filters, false);
            const fast = matchEventBytes(raw, ids);
            if (fast === undefined) {
              // The parsed path then sees the ids in the same state: it answers (or not) the same.
              const again = parsedSsePath([raw], ids, filters, false);
              assert.deepEqual(again, ref, JSON.stringify(text));
              continue;
            }
            settled++;
            if (fast === PASS) {
              passed++;
              assert.deepEqual(ref, raw, `passed by the byte path only: ${JSON.stringify(text)}`);
            } else {
              replaced++;
              assert.deepEqual(fast, ref, `replaced otherwise: ${JSON.stringify(text)}`);
            }
          }
        },
      ),
      { seed: SEED, numRuns: RUNS },
    );
    assert.ok(replaced > RUNS / 10, `enough responses take the byte path (${replaced})`);
    assert.ok(passed > RUNS / 10, `enough notifications take the byte path (${passed})`);
    assert.ok(
      settled < blocksSeen / 2,
      `the parsed path still gets most blocks (${settled} of ${blocksSeen})`,
    );
  });
});

describe('SSE event byte path: named hostile events', () => {
  const x = exchange(7, 'call');
  const cases: [string, string][] = [
    [
      'a cancellation naming the tag',
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${x.tag}"}}`,
    ],
    [
      'requestId spelled with an escape',
      `{"method":"notifications/cancelled","params":{"\\u0072equestId":"${x.tag}"}}`,
    ],
    ['params spelled with an escape', `{"method":"n","\\u0070arams":{"requestId":"${x.other}"}}`],
    ['params repeated, the second naming', `{"method":"n","params":{},"params":{"requestId":"g1x"}}`],
    [
      'a subscription in params._meta',
      `{"method":"n","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"x"}}}`,
    ],
    ['a notification with a result', `{"method":"n","result":{}}`],
    ['a response with result and error', `{"id":"${x.tag}","result":{},"error":{}}`],
    ['a response to another exchange', `{"id":"${x.other}","result":{}}`],
  ];
  for (const [name, json] of cases) {
    it(`leaves ${name} to the parsed path`, () => {
      const raw = Buffer.from(`event: message\ndata: ${json}\n\n`);
      assert.equal(matchEventBytes(raw, exchangeIds(x.tags)), undefined);
    });
  }

  it('passes a progress notification as it is and splices the client id into the result', () => {
    const ids = exchangeIds(x.tags);
    const progress = Buffer.from(
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0}}\n\n',
    );
    assert.equal(matchEventBytes(progress, ids), PASS);
    const result = Buffer.from(
      `event: message\nid: 3\ndata: {"jsonrpc":"2.0","id":"${x.tag}","result":{}}\n\n`,
    );
    assert.equal(
      matchEventBytes(result, ids)?.toString(),
      'event: message\nid: 3\ndata: {"jsonrpc":"2.0","id":7,"result":{}}\n\n',
    );
    // Answered once: a second answer is the parse's to refuse.
    assert.equal(matchEventBytes(result, ids), undefined);
  });

  it('keeps the first-block byte order mark rule: a block after one it settled keeps its BOM', () => {
    const progress = 'event: message\ndata: {"method":"notifications/progress"}\n\n';
    const bom = `\ufeffdata: {"method":"n"}\n\n`;
    const chunks = [Buffer.from(progress + bom)];
    assert.deepEqual(gatewayStream(chunks, x), parsedSsePath(chunks, exchangeIds(x.tags), filters));
  });
});
