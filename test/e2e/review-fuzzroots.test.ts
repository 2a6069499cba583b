/**
 * Attack review of the roots policy (src/policy/roots.ts), fuzzed (fuzzroots). A seeded differential
 * fuzzer sends client messages carrying roots through the real gateway, on both transports
 * (Streamable HTTP POSTs, and the HTTP+SSE endpoint's POSTs; and a third gateway with
 * `policy.unknown_methods: allow` and arguments unread, where large bodies leave unread parts out of
 * the parse), to a recording upstream: responses whose `result` holds `roots`, batches mixing
 * answers and requests, 2026-07-28 `params.inputResponses`
 * (bare and wrapped under `result`), with keys spelled with escapes, repeated, as case variants
 * (`Roots`, `rootſ`, `URI`, `urı`, `Result`, `input_responses`), nested copies, values that are
 * not arrays or objects, URIs mutated (percent-encoding, dot segments, separators, Unicode, hosts,
 * schemes), and random numbers and strings around them.
 *
 * The oracle reads what the upstream received as real servers do: JSON.parse, a first-wins parser, a
 * case-folding decoder (Go's encoding/json v1), a pydantic-like reader (camelCase or snake_case), and
 * the MCP SDK's ListRootsResultSchema; every root any of them finds must be one the key may lend,
 * judged by a matcher written here (not the gateway's): `file:///srv/data` exactly, or a `file:` URI
 * whose path stays under `/work/project/` however a server reads it (`new URL()`, the text after
 * `file://`, decoded or not, NFKC or not, `\` as `/`, resolved). Every request gets a JSON-RPC
 * answer (or a 202; on HTTP+SSE a refused request's error on the stream) with a status below 500 and
 * within the timeout, and exactly one audit line, whose `roots_withheld` is the number of roots sent
 * less the number the upstream got (none when the upstream got nothing).
 *
 * "failed before: ..." tests failed on the code they were written against; "holds: ..." tests pass
 * and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import { ListRootsResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey } from '../helpers/review-config.ts';
import { parseFirstWins, prng } from '../helpers/request-fuzz.ts';
import type { Rand } from '../helpers/request-fuzz.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';

// FUZZ_SEED and FUZZ_CASES run other seeds, or more cases, by hand.
const SEED = Number(process.env.FUZZ_SEED ?? 0x2007);
const CASES = Number(process.env.FUZZ_CASES ?? 700);
const KEY = newKey();
const PROJECT = '/work/project/';
const HEADERS_2026 = {
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'read_file',
};

const LENIENT = `
audit:
  log_arguments: false
policy:
  unknown_methods: allow`;

const int = (r: Rand, n: number): number => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)] as T;

function config(url: string, transport: string, extra = ''): string {
  return `listen: 127.0.0.1:0${extra}
upstream:
  url: ${url}
  transport: ${transport}
auth:
  session_secret: "${'z'.repeat(40)}"
rate_limit:
  capacity: 1000000
  refill_per_second: 1000000
keys:
  - label: project
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [read_file]
    roots: ["file:///work/project/*", "file:///srv/data"]
`;
}

// ---- the reference: what this key may lend, written without the gateway's code ----

/**
 * A root the key may lend: `file:///srv/data`, or a `file:` URI with no host whose path, as every
 * reader below takes it, stays under /work/project/: `new URL()`'s pathname or the text after
 * `file://` up to `?` or `#` (or all of it), percent-decoded or not, NFKC-normalised or not, `\` read
 * as `/` or not, then resolved (`path.posix.normalize`).
 */
function mayLend(uri: string): boolean {
  if (uri === 'file:///srv/data') return true;
  if (!uri.startsWith(`file://${PROJECT}`)) return false;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return false;
  }
  if (url.protocol !== 'file:' || url.host !== '') return false;
  const rest = uri.slice('file://'.length);
  const paths = [url.pathname, rest, rest.split(/[?#]/)[0] as string];
  for (const p of [...paths]) {
    try {
      paths.push(decodeURIComponent(p));
    } catch {
      return false;
    }
  }
  for (const p of [...paths]) paths.push(p.normalize('NFKC'), p.replaceAll('\\', '/'));
  for (const p of paths) {
    // eslint-disable-next-line no-control-regex -- matching control characters is the point
    if (/[\0-\x1f\x7f]/.test(p)) return false;
    const resolved = posix.normalize(p.replaceAll(/(^|\/) +| +(\/|$)/g, '$1$2'));
    if (!resolved.startsWith(PROJECT) || resolved.length === PROJECT.length) return false;
  }
  return true;
}

// ---- readers of what crossed ----

type Reader = (o: Record<string, unknown>, field: string) => unknown;
const exact: Reader = (o, field) => (Object.hasOwn(o, field) ? o[field] : undefined);
/** Go's encoding/json v1: the last key equal to the field's name under simple case folding. */
const goFold = (k: string) =>
  [...k].map((c) => (c === '\u212a' ? 'k' : c === 'ſ' ? 's' : c.toLowerCase())).join('');
const folding: Reader = (o, field) => {
  let found: unknown;
  for (const key of Object.keys(o)) if (goFold(key) === goFold(field)) found = o[key];
  return found;
};
/** pydantic with camelCase aliases and populate_by_name: the alias, else the snake_case name. */
const snake = (f: string) => f.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const pydantic: Reader = (o, field) => (Object.hasOwn(o, field) ? o[field] : exact(o, snake(field)));

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every root URI (or non-string uri value) `read` finds in a parsed body. */
function rootsFound(value: unknown, read: Reader): unknown[] {
  const out: unknown[] = [];
  const answer = (x: unknown) => {
    if (!isObject(x)) return;
    const roots = read(x, 'roots');
    if (!Array.isArray(roots)) return;
    for (const e of roots) if (isObject(e) && read(e, 'uri') !== undefined) out.push(read(e, 'uri'));
  };
  for (const m of Array.isArray(value) ? value : [value]) {
    if (!isObject(m)) continue;
    if (read(m, 'method') === undefined) {
      answer(read(m, 'result'));
      continue;
    }
    const params = read(m, 'params');
    const responses = isObject(params) ? read(params, 'inputResponses') : undefined;
    if (typeof responses !== 'object' || responses === null) continue;
    for (const v of Object.values(responses)) {
      answer(v);
      if (isObject(v)) answer(read(v, 'result'));
    }
  }
  return out;
}

/** The SDK's schema over each result JSON.parse reads. */
function sdkRoots(value: unknown): unknown[] {
  const out: unknown[] = [];
  const answer = (x: unknown) => {
    const parsed = ListRootsResultSchema.safeParse(x);
    if (parsed.success) for (const root of parsed.data.roots) out.push(root.uri);
  };
  for (const m of Array.isArray(value) ? value : [value]) {
    if (!isObject(m)) continue;
    if (m.method === undefined) answer(m.result);
    else if (
      isObject(m.params) &&
      typeof m.params.inputResponses === 'object' &&
      m.params.inputResponses !== null
    )
      for (const v of Object.values(m.params.inputResponses)) {
        answer(v);
        if (isObject(v)) answer(v.result);
      }
  }
  return out;
}

/** Every root a reader of `text` finds that the key may not lend, named by reader. */
function violations(text: string): string[] {
  const out: string[] = [];
  let last: unknown;
  try {
    last = JSON.parse(text);
  } catch {
    return [`the upstream got bytes JSON.parse refuses: ${text.slice(0, 200)}`];
  }
  const readings: [string, unknown[]][] = [
    ['JSON.parse', rootsFound(last, exact)],
    ['first-wins', rootsFound(parseFirstWins(text), exact)],
    ['go', rootsFound(last, folding)],
    ['pydantic', rootsFound(last, pydantic)],
    ['sdk', sdkRoots(last)],
  ];
  for (const [reader, uris] of readings)
    for (const uri of uris)
      if (typeof uri !== 'string' || !mayLend(uri)) out.push(`${reader} read root ${JSON.stringify(uri)}`);
  return out;
}

/**
 * How many root entries a body hands over as the gateway counts them (a member `roots`, or one a
 * decoder folding case or underscores reads as it: its array's entries, or 1 for another value), in
 * a response's `result` or an `inputResponses` entry (bare, or under `result` or a spelling of it).
 */
function rootEntries(value: unknown, variants: boolean): number {
  const fold = (k: string) => k.toUpperCase().toLowerCase().replaceAll('_', '');
  const is = (k: string, f: string) => k === f || (variants && fold(k) === f.toLowerCase());
  let n = 0;
  const answer = (x: unknown) => {
    if (!isObject(x)) return;
    for (const k of Object.keys(x)) {
      if (!is(k, 'roots')) continue;
      const v = x[k];
      n += Array.isArray(v) ? v.length : 1;
    }
  };
  for (const m of Array.isArray(value) ? value : [value]) {
    if (!isObject(m)) continue;
    if (m.method === undefined) answer(m.result);
    else if (
      isObject(m.params) &&
      typeof m.params.inputResponses === 'object' &&
      m.params.inputResponses !== null
    )
      for (const v of Object.values(m.params.inputResponses)) {
        answer(v);
        if (isObject(v)) for (const k of Object.keys(v)) if (is(k, 'result')) answer(v[k]);
      }
  }
  return n;
}

// ---- the generator: JSON text, keys repeated and spelled as it likes ----

/** A JSON string literal of `s`, with one character written as `\uXXXX` when `escape`. */
function lit(s: string, r: Rand, escapeRate = 0.1): string {
  if (s.length === 0 || r() >= escapeRate) return JSON.stringify(s);
  const at = int(r, s.length);
  const u = `\\u${s.charCodeAt(at).toString(16).padStart(4, '0')}`;
  return `"${JSON.stringify(s.slice(0, at)).slice(1, -1)}${u}${JSON.stringify(s.slice(at + 1)).slice(1, -1)}"`;
}
const obj = (members: [string, string][]) => `{${members.map(([k, v]) => `${k}:${v}`).join(',')}}`;

const URIS_OK = [
  'file:///work/project/app',
  'file:///work/project/a/b.txt',
  'file:///srv/data',
  'file:///work/project/x-1',
];
const URIS_BAD = [
  'file:///',
  'file:///etc',
  'file:///work/project/../../etc',
  'file:///work/project/%2e%2e/%2e%2e/etc',
  'file:///work/project/%2E%2E',
  'file:///work/project/.%2e/etc',
  'file:///work/project/a/..',
  'file:///work/project/.',
  'file:///work/project//etc',
  'file:///work/project/..%2fetc',
  'file:///work/project/\\..\\..\\etc',
  'file:///work/project/．．/etc',
  'file:///work/project/%252e%252e',
  'file:///work/project',
  'file:///work/projectX/a',
  'file:///work/project-evil',
  'FILE:///work/project/app',
  'File:///work/project/app',
  'file://localhost/etc',
  'file://evil/work/project/a',
  'file:/work/project/a',
  'file:work/project/a',
  'file:///srv/data/../../etc',
  'file:///srv/data/',
  'file:///srv/dat',
  'file:///SRV/data',
  'file:///work/project/a?x=/etc',
  'file:///work/project/a#/etc',
  'file:///work/project/;/etc',
  'file:///work/project/%00',
  'file:///work/project/a\u0000',
  'file:///work/project/a\n/../../etc',
  'file:///work/project/ .. /etc',
  'file:///work/project/‥/etc',
  'file:///work/project/\u202e',
  'file:///work/project/%ff',
  'file:///work/project/%',
  'file:////etc',
  'file:///work/Project/app',
  'https://example.com/work/project/a',
  'file:///work/project/\u00a0',
  'file:///work/project/a\\b',
  ' file:///work/project/app',
  'file:///work/project/app ',
  'file:\\\\\\work\\project\\app',
];

function mutateUri(r: Rand, uri: string): string {
  switch (int(r, 8)) {
    case 0: {
      const at = int(r, uri.length + 1);
      return (
        uri.slice(0, at) +
        pick(r, [
          '/',
          '\\',
          '.',
          '..',
          '%2e',
          '%2f',
          '%5c',
          '//',
          '?',
          '#',
          ' ',
          'ſ',
          '\u0131',
          '\u212a',
          '\u00e9',
          'e\u0301',
          '%00',
          '@',
        ]) +
        uri.slice(at)
      );
    }
    case 1:
      return uri.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`);
    case 2:
      return uri.toUpperCase();
    case 3:
      return `${uri}/${pick(r, ['..', '.', '../..', '%2e%2e', 'a', 'ü', '~', 'a/../..'])}`;
    default:
      return uri;
  }
}

function uriValue(r: Rand): string {
  const x = r();
  if (x < 0.04)
    return pick(r, [
      '1',
      '-0',
      '1e400',
      'null',
      'true',
      '{}',
      '[]',
      `[${lit('file:///', r)}]`,
      `{"uri":"file:///"}`,
    ]);
  const base = x < 0.45 ? pick(r, URIS_OK) : pick(r, URIS_BAD);
  return lit(r() < 0.3 ? mutateUri(r, base) : base, r, 0.15);
}

const URI_KEYS = ['uri', 'uri', 'uri', 'uri', 'URI', 'Uri', 'urI', 'ur\u0131', 'ur\u0130', 'u_ri', '_uri'];
const ROOTS_KEYS = [
  'roots',
  'roots',
  'roots',
  'Roots',
  'ROOTS',
  'root\u017f',
  'rootS',
  'r_oots',
  'root',
  'roots ',
];
const RESULT_KEYS = ['result', 'result', 'result', 'Result', 're\u017fult', 'RESULT', 'res_ult', 'results'];
const IR_KEYS = [
  'inputResponses',
  'inputResponses',
  'inputResponses',
  'InputResponses',
  'input_responses',
  'inputresponses',
];

function noise(r: Rand): string {
  return pick(r, [
    '0',
    '-0',
    '1e400',
    '123456789012345678901234567890',
    '0.1000000000000000055511151231257827',
    'null',
    'true',
    '"x"',
    lit('file:///', r, 0.5),
    '{"roots":[{"uri":"file:///"}]}',
    '[{"uri":"file:///"}]',
    `"${'a'.repeat(int(r, 40))}"`,
  ]);
}

function entry(r: Rand): string {
  const x = r();
  if (x < 0.06) return noise(r);
  const members: [string, string][] = [];
  members.push([lit(x < 0.75 ? 'uri' : pick(r, URI_KEYS), r), uriValue(r)]);
  if (r() < 0.15) members.push([lit(pick(r, URI_KEYS), r), uriValue(r)]); // repeated, or a variant
  if (r() < 0.3) members.push([lit('name', r), lit(pick(r, ['project', 'x', 'root']), r)]);
  if (r() < 0.1) members.push([lit('_meta', r), `{"nested":{"roots":[{"uri":"file:///"}]}}`]);
  if (r() < 0.1) members.push([lit(pick(r, ['x', 'n', 'uriX']), r), noise(r)]);
  if (r() < 0.5) members.reverse();
  return obj(members);
}

function rootsValue(r: Rand): string {
  if (r() < 0.08) return noise(r);
  const n = int(r, 5);
  return `[${Array.from({ length: n }, () => entry(r)).join(',')}]`;
}

/** A ListRootsResult, its `roots` spelled, repeated or copied as `r` likes. */
function answer(r: Rand): string {
  const members: [string, string][] = [[lit(r() < 0.7 ? 'roots' : pick(r, ROOTS_KEYS), r), rootsValue(r)]];
  if (r() < 0.2) members.push([lit(pick(r, ROOTS_KEYS), r), rootsValue(r)]);
  if (r() < 0.15) members.push([lit('_meta', r), `{"x":${noise(r)}}`]);
  if (r() < 0.1)
    members.push([
      lit(pick(r, ['nextCursor', 'result', 'resultType']), r),
      r() < 0.5 ? `{"roots":${rootsValue(r)}}` : lit('complete', r),
    ]);
  if (r() < 0.5) members.reverse();
  return obj(members);
}

function id(r: Rand): string {
  return pick(r, [String(int(r, 1000)), `"s${int(r, 1000)}"`, '0', '"x"', '12345678901234567890']);
}

/** A client's answer to the upstream's roots/list. */
function response(r: Rand): string {
  const members: [string, string][] = [
    ['"jsonrpc"', '"2.0"'],
    [lit('id', r), id(r)],
    [lit(r() < 0.85 ? 'result' : pick(r, RESULT_KEYS), r), r() < 0.93 ? answer(r) : noise(r)],
  ];
  if (r() < 0.08) members.push([lit('result', r), answer(r)]); // repeated
  if (r() < 0.04) members.push(['"error"', '{"code":-1,"message":"x"}']);
  if (r() < 0.3) members.sort(() => r() - 0.5);
  return obj(members);
}

/** Padding a large body holds: a long string, or many values, in members no rule reads. */
function padding(r: Rand): [string, string] {
  return r() < 0.5
    ? ['"pad"', `"${'p'.repeat(17_000)}"`]
    : ['"pad"', `{"a":[${Array.from({ length: 4000 }, (_, i) => i).join(',')}]}`];
}

/** A 2026-07-28 retried request (tools/call, or a method the table does not know) whose inputResponses hold roots answers. */
function retried(r: Rand, n: number, meta: boolean): string {
  const entries: [string, string][] = [];
  for (let i = 0, k = 1 + int(r, 3); i < k; i++) {
    const w = r();
    const value =
      w < 0.4
        ? answer(r)
        : w < 0.85
          ? obj([
              [lit(pick(r, RESULT_KEYS), r), answer(r)],
              ...(r() < 0.2 ? ([[lit('result', r), answer(r)]] as [string, string][]) : []),
            ])
          : w < 0.93
            ? obj([[lit('result', r), `{"action":"accept","content":{"roots":${rootsValue(r)}}}`]])
            : noise(r);
    entries.push([lit(pick(r, ['r1', 'r2', 'roots', 'result', '0']), r), value]);
  }
  const responses = r() < 0.9 ? obj(entries) : `[${entries.map(([, v]) => v).join(',')}]`;
  // A method the table does not know (passed under `policy.unknown_methods: allow`), or tools/call.
  const method = r() < 0.8 ? '"tools/call"' : pick(r, ['"x/custom"', '"tools/Call"', '"notifications/x"']);
  const params: [string, string][] = [
    ['"name"', '"read_file"'],
    ['"arguments"', `{"path":"/etc/hostname","n":${noise(r)}}`],
    [lit(r() < 0.75 ? 'inputResponses' : pick(r, IR_KEYS), r), responses],
    ['"requestState"', '"opaque"'],
  ];
  if (r() < 0.1) params.push([lit('inputResponses', r), obj(entries.slice(0, 1))]);
  if (r() < 0.1) params.push(padding(r));
  if (r() < 0.3) params.sort(() => r() - 0.5);
  if (meta)
    params.push([
      '"_meta"',
      '{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{}}}',
    ]);
  return obj(
    [
      ['"jsonrpc"', '"2.0"'],
      ['"id"', String(n)],
      ['"method"', method],
      ['"params"', obj(params)],
    ].filter(([k]) => k !== '"id"' || method !== '"notifications/x"') as [string, string][],
  );
}

interface Case {
  readonly body: string;
  readonly headers: Record<string, string>;
}

function makeCase(r: Rand, n: number): Case {
  const shape = r();
  if (shape < 0.4) return { body: response(r), headers: {} };
  if (shape < 0.7) return { body: retried(r, n, true), headers: HEADERS_2026 };
  // A batch mixing answers, a retried call (without the 2026-07-28 markers) and plain requests.
  const parts: string[] = [];
  for (let i = 0, k = 1 + int(r, 4); i < k; i++) {
    const p = r();
    if (p < 0.5) parts.push(response(r));
    else if (p < 0.7) parts.push(retried(r, 10_000 + n * 10 + i, false));
    else if (p < 0.85)
      parts.push(
        `{"jsonrpc":"2.0","id":${20_000 + n * 10 + i},"method":"tools/call","params":{"name":"read_file","arguments":{}}}`,
      );
    else parts.push('{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}');
  }
  return { body: `[${parts.join(',')}]`, headers: {} };
}

// ---- the harness ----

interface Sent {
  readonly status: number;
  readonly text: string;
  /** What the upstream got for it, if anything. */
  readonly got: string | undefined;
}

interface Target {
  send(c: Case): Promise<Sent>;
  readonly gateway: TestGateway;
}

/** A Streamable HTTP gateway over an upstream that records each body and answers each request. */
async function streamable(extra = ''): Promise<Target & { close(): Promise<void> }> {
  const seen: string[] = [];
  const upstream: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      seen.push(text);
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return void res.writeHead(400).end();
      }
      const messages = (Array.isArray(parsed) ? parsed : [parsed]) as { id?: unknown; method?: string }[];
      const answers = messages
        .filter((m) => m.method !== undefined && m.id !== undefined)
        .map((m) => ({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } }));
      if (answers.length === 0) return void res.writeHead(202).end();
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(Array.isArray(parsed) ? answers : answers[0]));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const gateway = await startTestGateway(config(url, 'streamable-http', extra));
  return {
    gateway,
    async send(c) {
      const before = seen.length;
      const response = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${KEY}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...c.headers,
        },
        body: c.body,
        signal: AbortSignal.timeout(5000),
      });
      const text = await response.text();
      return { status: response.status, text, got: seen[before] };
    },
    async close() {
      await gateway.close(200);
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    },
  };
}

/** Whether a body (valid JSON) holds a request: an answer is owed for it. */
function holdsRequest(body: string): boolean {
  const value = JSON.parse(body) as unknown;
  return (Array.isArray(value) ? value : [value]).some((m) => isObject(m) && 'method' in m && 'id' in m);
}

/**
 * An HTTP+SSE gateway: one stream open, each case POSTed to its endpoint. A request it refuses is
 * answered 202 and its error owed on the stream: given as a 400 with that error (the first, for a batch).
 */
async function legacy(): Promise<Target & { close(): Promise<void> }> {
  const upstream: RawSseUpstream = await startRawSseUpstream((origin) => `${origin}/legacy/messages?s=1`);
  const gateway = await startTestGateway(config(upstream.url, 'sse'));
  const stream: OpenedStream = await openStream(gateway.mcpUrl, KEY);
  const first = await stream.next();
  assert.equal(first.event, 'endpoint');
  const endpoint = new URL(first.data, gateway.url).href;
  return {
    gateway,
    async send(c) {
      const before = upstream.posts.length;
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...c.headers },
        body: c.body,
        signal: AbortSignal.timeout(5000),
      });
      let text = await response.text();
      const got = upstream.posts[before]?.body;
      // Refused with 202: the answer to each request it holds is owed on the stream.
      if (response.status === 202 && got === undefined && holdsRequest(c.body)) {
        try {
          const owed = JSON.parse((await stream.next(3000)).data) as unknown;
          return { status: 400, text: JSON.stringify(Array.isArray(owed) ? owed[0] : owed), got };
        } catch {
          text = 'no answer on the stream';
          return { status: 599, text, got };
        }
      }
      return { status: response.status, text, got };
    },
    async close() {
      stream.close();
      await gateway.close(200);
      await upstream.close();
    },
  };
}

/** Sends `c`, and gives every broken promise: a root lent, a bad answer, a missing or false audit line. */
async function check(target: Target, c: Case): Promise<string[]> {
  const lines = target.gateway.auditLines;
  const linesBefore = lines.length;
  const sent = await target.send(c);
  const out: string[] = [];
  if (sent.status >= 500) out.push(`status ${sent.status}: ${sent.text.slice(0, 200)}`);
  if (sent.status >= 400) {
    try {
      const e = JSON.parse(sent.text) as { jsonrpc?: string; error?: { code?: unknown } };
      if (e.jsonrpc !== '2.0' || typeof e.error?.code !== 'number')
        out.push(`not a JSON-RPC error: ${sent.text}`);
    } catch {
      out.push(`not JSON: ${sent.text.slice(0, 200)}`);
    }
    if (sent.got !== undefined) out.push(`refused with ${sent.status} but the upstream got ${sent.got}`);
  }
  if (sent.got !== undefined) out.push(...violations(sent.got));
  // One audit line, written once the answer is done.
  const deadline = Date.now() + 3000;
  while (lines.length === linesBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  await new Promise((r) => setTimeout(r, 1));
  if (lines.length !== linesBefore + 1) return [...out, `${lines.length - linesBefore} audit lines`];
  const line = lines[linesBefore] as { roots_withheld?: number; roots_withheld_uris?: unknown[] };
  if (sent.got !== undefined) {
    const withheld = rootEntries(JSON.parse(c.body), true) - rootEntries(JSON.parse(sent.got), false);
    if ((line.roots_withheld ?? 0) !== withheld)
      out.push(`the line says roots_withheld ${line.roots_withheld}, ${withheld} were withheld`);
    if ((line.roots_withheld_uris?.length ?? 0) !== Math.min(20, line.roots_withheld ?? 0))
      out.push(`the line names ${line.roots_withheld_uris?.length} uris for ${line.roots_withheld}`);
  } else if (line.roots_withheld !== undefined)
    out.push(`nothing reached the upstream, yet the line says ${line.roots_withheld}`);
  return out;
}

describe('review-fuzzroots: a seeded differential fuzzer of the roots a key lends', () => {
  let targets: { name: string; target: Target & { close(): Promise<void> } }[] = [];

  before(async () => {
    targets = [
      { name: 'streamable-http', target: await streamable() },
      { name: 'sse', target: await legacy() },
      // Arguments not read (large bodies leave unread parts out of the parse), unknown methods passed.
      { name: 'lenient', target: await streamable(LENIENT) },
    ];
  });
  after(async () => {
    for (const { target } of targets) await target.close();
  });

  it('hole: under `unknown_methods: allow`, a method the table does not know lends file:/// under `input_responses` or `InputResponses`; failed before: reached the upstream as sent', async () => {
    const target = targets.find((t) => t.name === 'lenient')!.target;
    const lines = target.gateway.auditLines;
    const roots = '{"r1":{"roots":[{"uri":"file:///","name":"everything"}]}}';
    for (const key of ['input_responses', 'InputResponses', 'inputResponseſ']) {
      const body = `{"jsonrpc":"2.0","id":41,"method":"x/custom","params":{${JSON.stringify(key)}:${roots}}}`;
      const sent = await target.send({ body, headers: {} });
      // pydantic (populate_by_name) and Go's encoding/json read either as `inputResponses`.
      assert.equal(sent.got, undefined, `the upstream got ${sent.got}`);
      assert.equal(sent.status, 200, sent.text);
      const answer = JSON.parse(sent.text) as { id: unknown; error: { code: number; message: string } };
      assert.equal(answer.id, 41);
      assert.equal(answer.error.code, -32602);
      assert.match(answer.error.message, /another spelling of a member the gateway reads/);
      const line = await waitFor(() => lines.findLast((l) => l.rpc_id === 41 && l.rpc_method === 'x/custom'));
      assert.equal(line.decision, 'invalid');
    }
    // The member as spelled is read, and its roots cut, whatever the method.
    const sent = await target.send({
      body: `{"jsonrpc":"2.0","id":42,"method":"x/custom","params":{"inputResponses":${roots}}}`,
      headers: {},
    });
    assert.equal(sent.status, 200, sent.text);
    assert.deepEqual((JSON.parse(sent.got!) as { params: unknown }).params, {
      inputResponses: { r1: { roots: [] } },
    });
    const line = await waitFor(() => lines.findLast((l) => l.rpc_id === 42));
    assert.equal(line.roots_withheld, 1);
  });

  it('hole: under `unknown_methods: allow`, a method the table does not know names a task the key does not own under `meta`; failed before: reached the upstream as sent', async () => {
    // Under `_meta` it is refused (Task not found); pydantic (populate_by_name) reads `meta` as `_meta`.
    const target = targets.find((t) => t.name === 'lenient')!.target;
    const related = '{"io.modelcontextprotocol/related-task":{"taskId":"another-keys-task"}}';
    for (const key of ['_meta', 'meta', '_Meta']) {
      const body = `{"jsonrpc":"2.0","id":43,"method":"x/custom","params":{${JSON.stringify(key)}:${related}}}`;
      const sent = await target.send({ body, headers: {} });
      assert.equal(sent.got, undefined, `the upstream got ${sent.got}`);
      const answer = JSON.parse(sent.text) as { id: unknown; error: { code: number } };
      assert.equal(answer.id, 43);
      assert.equal(answer.error.code, -32602);
    }
  });

  it('hole: a batch refused for its tools/list cursor says roots_withheld though the upstream got nothing; failed before: roots_withheld 1', async () => {
    // A batch refused for a denial has no roots_withheld: nothing was lent, nothing withheld from the upstream.
    const { target } = targets[0]!;
    const lines = target.gateway.auditLines;
    const sent = await target.send({
      body: '[{"jsonrpc":"2.0","id":"s1","result":{"roots":[{"uri":"file:///"}]}},{"jsonrpc":"2.0","id":44,"method":"tools/list","params":{"cursor":"not-one-of-ours"}}]',
      headers: {},
    });
    assert.equal(sent.got, undefined, `the upstream got ${sent.got}`);
    assert.equal((JSON.parse(sent.text) as { error: { code: number } }[])[0]?.error.code, -32602);
    const line = await waitFor(() =>
      lines.findLast((l) => l.rpc_id === undefined && l.reason === 'ERR_INVALID_PARAMS'),
    );
    assert.equal(line.roots_withheld, undefined);
    assert.equal(line.roots_withheld_uris, undefined);
  });

  it(`fuzz: ${CASES} cases per transport, seed ${SEED}: no reader upstream finds a root the key may not lend`, async () => {
    const found: string[] = [];
    for (const { name, target } of targets) {
      const r = prng(SEED);
      for (let n = 0; n < CASES; n++) {
        const c = makeCase(r, n);
        const problems = await check(target, c);
        if (problems.length > 0) found.push(`${name} #${n}: ${problems.join('; ')}\n  body: ${c.body}`);
      }
    }
    assert.deepEqual(found.slice(0, 15), [], `${found.length} cases broke a promise`);
  });
});
