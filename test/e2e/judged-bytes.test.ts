/**
 * What the gateway judged is exactly what the upstream receives: for request bodies written with
 * the tricks parsers read differently (escaped and duplicate keys, big and odd numbers, escapes and
 * lone surrogates in strings, a client id that looks like a tag, an "id" inside params, batches,
 * cancellations, large arguments left out of the parse with keys repeated in and around them, long
 * strings of `\u` escapes left out and forwarded as the client spelled them), the
 * upstream reads the message the gateway judged (JSON.parse semantics, numbers as spelled) with
 * only each request id replaced by a tag that carries the client's id, and no key twice. The client gets its own ids back. Runs against the real gateway and a raw upstream that
 * records the bytes it got.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { readTagUnverified } from '../../src/integrity/request-tag.ts';
import { startRawUpstreamGateway, withBody } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));

/** A number as its lexeme, so a changed spelling shows. */
interface Num {
  readonly num: string;
}

/**
 * Strict JSON reader: numbers kept as their lexemes; a repeated key is an error (`dupes: 'error'`)
 * or its last value wins, as JSON.parse reads it (`dupes: 'last'`).
 */
function readJson(text: string, dupes: 'error' | 'last'): unknown {
  let i = 0;
  const wsp = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const str = (): string => {
    // JSON.parse of the string alone refuses what JSON does not allow in it.
    const m = /^"(?:[^"\\]|\\.)*"/.exec(text.slice(i));
    if (m === null) throw new SyntaxError(`bad string at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const val = (): unknown => {
    wsp();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      wsp();
      if (text[i] === '}') {
        i++;
        return out;
      }
      for (;;) {
        wsp();
        const k = str();
        if (seen.has(k) && dupes === 'error') throw new SyntaxError(`key ${JSON.stringify(k)} twice`);
        seen.add(k);
        wsp();
        if (text[i++] !== ':') throw new SyntaxError(`expected : at ${i}`);
        Object.defineProperty(out, k, { value: val(), enumerable: true, writable: true, configurable: true });
        wsp();
        const d = text[i++];
        if (d === '}') return out;
        if (d !== ',') throw new SyntaxError(`expected , at ${i}`);
      }
    }
    if (c === '[') {
      i++;
      const out: unknown[] = [];
      wsp();
      if (text[i] === ']') {
        i++;
        return out;
      }
      for (;;) {
        out.push(val());
        wsp();
        const d = text[i++];
        if (d === ']') return out;
        if (d !== ',') throw new SyntaxError(`expected , at ${i}`);
      }
    }
    if (c === '"') return str();
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i));
    if (m === null) throw new SyntaxError(`bad value at ${i}`);
    i += m[0].length;
    if (m[0] === 'true') return true;
    if (m[0] === 'false') return false;
    if (m[0] === 'null') return null;
    return { num: m[0] } satisfies Num;
  };
  const v = val();
  wsp();
  if (i !== text.length) throw new SyntaxError(`trailing bytes at ${i}`);
  return v;
}

const isNum = (v: unknown): v is Num =>
  typeof v === 'object' && v !== null && Object.keys(v).length === 1 && Object.hasOwn(v, 'num');
/** A request id as JSON-RPC reads it (a Num for a number). */
const idValue = (v: unknown) => (isNum(v) ? Number(v.num) : v);

/**
 * The upstream's message with each request id (and each cancellation's requestId) replaced by the
 * client id its tag carries; fails when such an id is not a tag.
 */
function untagged(received: unknown): unknown {
  const one = (m: unknown): unknown => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) return m;
    const o = { ...(m as Record<string, unknown>) };
    const fromTag = (id: unknown) => {
      assert.equal(typeof id, 'string', 'the upstream gets a tag');
      const carried = readTagUnverified(id as string);
      assert.ok(carried, `${String(id)} is a tag`);
      const c = carried.clientId;
      return typeof c === 'number' ? { num: String(c) } : c;
    };
    if (Object.hasOwn(o, 'method') && Object.hasOwn(o, 'id')) o.id = fromTag(o.id);
    if (o.method === 'notifications/cancelled' && typeof o.params === 'object' && o.params !== null) {
      const p = { ...(o.params as Record<string, unknown>) };
      if (Object.hasOwn(p, 'requestId')) p.requestId = fromTag(p.requestId);
      o.params = p;
    }
    return o;
  };
  return Array.isArray(received) ? received.map(one) : one(received);
}

/** The client ids of the requests in a body (for the responses' ids). */
function requestIds(judged: unknown): unknown[] {
  const items = Array.isArray(judged) ? judged : [judged];
  return items
    .filter((m) => Object.hasOwn(m as object, 'method') && Object.hasOwn(m as object, 'id'))
    .map((m) => idValue((m as { id: unknown }).id));
}

const call = (id: string, args: string, name = '"echo"') =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":${name},"arguments":${args}}}`;
/** Arguments large enough to be left out of JSON.parse when nothing reads them (jsonrpc/skeleton.ts). */
const PAD = `[${'1.0,"ab",{"k":true,"n":-0},'.repeat(2500)}1e400]`;
/** A long string of `\u` escapes, lone surrogates, escaped quotes and the text `\\u0000`: left out of JSON.parse when unread. */
const U = '\\u00e9\\ud800\\"\\\\u0000x\\u0000'.repeat(1200);
const LOOKS_LIKE_TAG = '"g1tAQEBAQEB1.sbGlzdC0x.ECq8epnYfyCftLls"';

const CASES: Record<string, string> = {
  'numbers a double cannot hold, or spells otherwise': call(
    '1',
    '{"n":123456789012345678901234567890,"f":1.0,"z":-0,"e":1e400,"m":-1.5E-10,"x":[1e308,5e-324,0.1,1E2]}',
  ),
  'escapes, lone surrogates and line separators in strings': call(
    '"s-1"',
    '{"a":"\\u0000\\ud800\\udc00x\\ud800","b":"\u2028\u2029","c":"\\"id\\":\\"x\\"","d":"é😀\\/\\\\"}',
  ),
  'keys written with escapes': `{"jsonrpc":"2.0","\\u0069d":"e-1","m\\u0065thod":"tools/call","p\\u0061rams":{"\\u006eame":"echo","arguments":{"\\u0069d":1}}}`,
  'a repeated key: the upstream reads only the value judged': `{"jsonrpc":"2.0","id":"d-1","id":"d-2","method":"tools/call","params":{"name":"secret","name":"echo","arguments":{"q":1,"q":2}}}`,
  'a client id that looks like a tag': call(LOOKS_LIKE_TAG, `{"id":${LOOKS_LIKE_TAG}}`),
  'an "id" inside params, before the real one': `{"params":{"name":"echo","arguments":{"id":"inner","x":{"id":7}},"id":"p"},"method":"tools/call","jsonrpc":"2.0","id":"outer"}`,
  'whitespace everywhere': ` \r\n{ "jsonrpc" : "2.0" ,\t"id" : 9 , "method":"tools/call" , "params" : { "name" : "echo" , "arguments" : { } } }\n`,
  'ids at the edges': `[${call('0', '{}')},${call('-1', '{}')},${call('9007199254740991', '{}')},${call('""', '{}')}]`,
  'characters of several bytes before the id, and an id written with escapes': `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"é😀":"ü\u2028"}},"id":"a\\/b\\"c"}`,
  // (A message member other than JSON-RPC's is refused since: the integer key sits in params.)
  'a key a parser orders first (an integer) after the id': `{"jsonrpc":"2.0","method":"tools/call","id":"k","params":{"name":"echo","arguments":{"2":1,"1":[]},"7":{"id":"k"}}}`,
  'the id written twice with one value': `{"jsonrpc":"2.0","id":"t","method":"tools/call","params":{"name":"echo"},"id":"t"}`,
  'a batch with whitespace between and inside its messages': `[ ${call('"w-1"', '{ "id" : "w-1" }')} ,\n\t{ "jsonrpc" : "2.0" , "id" : "w-2" , "method" : "tools/call" , "params" : { "name" : "echo" } } ]`,
  'a batch of calls, a notification and a cancellation': `[${call('"b-1"', '{"k":1.50}')},{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1.0}},${call('2', '{"big":18446744073709551617}')},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"b-1","reason":"x"}}]`,
  'large arguments left out of the parse, with keys repeated inside them': call(
    '"L-1"',
    `{"cmd":"rm -rf /","pad":${PAD},"cmd":"ls","more":${PAD},"o":{"x":1,"x":{"y":2,"y":"${'y'.repeat(2000)}"}}}`,
  ),
  'large arguments left out of the parse in a params a later params replaces': `{"jsonrpc":"2.0","params":{"name":"secret","arguments":{"pad":${PAD}}},"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"pad":${PAD},"a":2}},"id":"L-2"}`,
  'large arguments left out of the parse in a params that replaces another': `{"jsonrpc":"2.0","params":{"name":"secret"},"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"pad":${PAD},"a":2,"more":${PAD}}},"id":"L-5"}`,
  'long strings with \\u escapes, left out of the parse and forwarded as spelled, the id after them': `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"e\\u0063ho","arguments":{"a":"${U}","b":["${U}",{"c":"${U}"}]}},"id":"U-1"}`,
  'long \\u strings beside a placeholder spelled by the client': call(
    '"U-2"',
    `{"a":"${U}","p":"\\u0000k","q":"\\u00000"}`,
  ),
  'a batch repeating arguments that hold long \\u strings': `[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"a":"${U}"},"\\u0061rguments":{"b":"${U}","b":1}},"id":"U-3"},${call('"U-4"', `{"a":"${U}","a":"${U}x"}`)}]`,
  'a batch whose large arguments repeat, and repeat their keys': `[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"pad":${PAD},"q":1},"arguments":{"q":1,"pad":${PAD},"q":2}},"id":"L-3"},${call('"L-4"', `{"pad":${PAD},"pad":1}`)}]`,
};

describe('the upstream reads exactly the judged message, with only the ids changed', () => {
  let gateway: TestGateway;
  let upstream: RawUpstreamGateway;
  const received: Buffer[] = [];
  before(async () => {
    upstream = await startRawUpstreamGateway(
      withBody((raw, res) => {
        received.push(raw);
        const value = JSON.parse(raw.toString()) as unknown;
        const items = (Array.isArray(value) ? value : [value]) as Record<string, unknown>[];
        const answers = items
          .filter((m) => Object.hasOwn(m, 'method') && Object.hasOwn(m, 'id'))
          .map((m) => ({ jsonrpc: '2.0', id: m.id, result: { content: [] } }));
        if (answers.length === 0) return void res.writeHead(202).end();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(Array.isArray(value) ? answers : answers[0]));
      }),
      KEY,
      ['echo'],
    );
    gateway = upstream.gateway;
  });
  after(async () => {
    await upstream.close();
  });

  for (const [name, body] of Object.entries(CASES)) {
    it(name, async () => {
      const judged = readJson(body.trim(), 'last');
      const before = received.length;
      const res = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${KEY}`,
        },
        body,
      });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.equal(received.length, before + 1, 'forwarded once');
      const raw = received.at(-1)!.toString('utf8');
      // Every parser on the upstream reads one meaning: no key twice, strict JSON.
      const got = readJson(raw, 'error');
      assert.deepEqual(untagged(got), judged, raw);
      // The unread long strings went through unbuilt: the client's own spelling, not a re-spelling.
      if (name.includes('forwarded as spelled'))
        assert.ok(raw.includes(`"a":"${U}"`), 'unread string kept as spelled');
      // The client gets its own ids back, in order.
      const answer = JSON.parse(text) as unknown;
      const answered = (Array.isArray(answer) ? answer : [answer]).map((m) => (m as { id: unknown }).id);
      assert.deepEqual(answered, requestIds(judged));
    });
  }
});
