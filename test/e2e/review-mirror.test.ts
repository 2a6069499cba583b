/**
 * Attack review: the 2026-07-28 revision's header mirroring (`Mcp-Method`, `Mcp-Name`,
 * `Mcp-Param-*`). Upstreams and load balancers may route on these headers without reading the body,
 * so whatever the gateway forwards must carry headers that every reader takes as equal to the body
 * it judged, or be refused with 400 (-32020) and one audit line.
 *
 * The differential fuzzer below (fixed seed) sends bodies and header sets through a real gateway to
 * a recording upstream, and reads every forwarded request as the real @modelcontextprotocol/server
 * 2.x reads it (its `Mcp-Name` check and its `Mcp-Param-*` comparison, restated from its
 * dist/src-*.mjs: `validateStandardRequestHeaders`, `validateMcpParamHeaders`), and as a reader
 * that keeps numbers exact and decodes Base64 strictly (Go's `json.Number` and
 * `base64.StdEncoding.Strict()`, Rust's `base64` STANDARD engine, Python's `Decimal`).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { keyedConfig } from '../helpers/raw-http.ts';
import { waitFor } from '../helpers/net.ts';
import { mintKey } from '../../src/auth/key-format.ts';

const MODERN = '2026-07-28';
const ENVELOPE = `{"io.modelcontextprotocol/protocolVersion":"${MODERN}","io.modelcontextprotocol/clientInfo":{"name":"f","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}`;

interface Arrived {
  readonly rawHeaders: string[];
  readonly body: string;
}

/** Records every POST as it arrived (raw header lines, body) and answers it as a tool call would be. */
async function startRecorder(): Promise<{ url: string; arrived: Arrived[]; close(): Promise<void> }> {
  const arrived: Arrived[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(405).end();
      const body = Buffer.concat(chunks).toString('utf8');
      arrived.push({ rawHeaders: req.rawHeaders, body });
      let m: { id?: unknown; method?: string } = {};
      try {
        m = JSON.parse(body) as typeof m;
      } catch {
        // answered 202 below; the oracle reports the body
      }
      if (m.id === undefined) return void res.writeHead(202).end();
      const result =
        m.method === 'resources/read'
          ? { contents: [] }
          : m.method === 'prompts/get'
            ? { messages: [] }
            : { content: [] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    arrived,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function post(url: string, headers: string[], body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: ['Host', u.host, ...headers],
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// ---- the 2.x SDK server's reading (restated from @modelcontextprotocol/server 2.4.0) ----

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
const SDK_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const CANONICAL_DECIMAL = /^-?\d+(\.\d+)?$/;
const NAME_SOURCE: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

function stripOws(v: string): string {
  return v.replace(/^[ \t]+/, '').replace(/[ \t]+$/, '');
}

/** `decodeMcpParamValue`: atob is lenient about the bits after the last character. */
function sdkDecode(value: string): string | undefined {
  if (!(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX))) return value;
  const b64 = value.slice(9, value.length - 2);
  if (!SDK_BASE64.test(b64)) return undefined;
  try {
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** A strict decoder (RFC 4648 canonical: the bits after the last character are zero). */
function strictDecode(value: string): string | undefined {
  const decoded = sdkDecode(value);
  if (decoded === undefined || !value.startsWith(SENTINEL_PREFIX) || !value.endsWith(SENTINEL_SUFFIX))
    return decoded;
  const b64 = value.slice(9, value.length - 2);
  return Buffer.from(Buffer.from(b64, 'base64').toString('base64')).toString() === b64 ? decoded : undefined;
}

/** `mcpParamPrimitiveToString`: undefined means the SDK does not compare (no header expected). */
function sdkString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || (Number.isInteger(v) && !Number.isSafeInteger(v))) return undefined;
    return String(v);
  }
  return undefined;
}

/** The SDK's comparison for one declaration of `type` whose body value is `raw`. */
function sdkEqual(decoded: string, raw: unknown, type: 'string' | 'integer' | 'boolean'): boolean {
  const bodyString = sdkString(raw);
  if (bodyString === undefined) return false;
  return type === 'integer' && CANONICAL_DECIMAL.test(decoded) && typeof raw === 'number'
    ? Number(decoded) === raw
    : decoded === bodyString;
}

/** A JSON number's exact value as a key: equal keys for equal values (`1`, `1.0`, `10e-1`). */
function exactKey(text: string): string | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const frac = m[3] ?? '';
  let digits = (m[2] as string) + frac;
  let exp = Number(m[4] ?? '0') - frac.length;
  digits = digits.replace(/^0+/, '');
  if (digits === '') return '0';
  while (digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    exp++;
  }
  return `${m[1]}${digits}e${exp}`;
}

/**
 * The primitives the arguments hold, reached through object members (where `x-mcp-header` may
 * stand), each with its exact number text when it is a number: read from the forwarded bytes.
 */
function primitives(argsText: string | undefined): { value: unknown; text?: string }[] {
  if (argsText === undefined) return [];
  const out: { value: unknown; text?: string }[] = [];
  // JSON.parse with source text (Node 24: the reviver's context.source) keeps each number's spelling.
  const texts = new WeakMap<object, Record<string, string>>();
  const parsed = JSON.parse(
    argsText,
    function (this: object, key: string, value: unknown, ctx?: { source?: string }) {
      if (typeof value === 'number' && ctx?.source !== undefined) {
        const rec = texts.get(this) ?? {};
        rec[key] = ctx.source;
        texts.set(this, rec);
      }
      return value;
    },
  ) as unknown;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return [];
  const walk = (v: unknown, holder?: object, key?: string): void => {
    if (v !== null && typeof v === 'object') {
      if (Array.isArray(v)) return;
      for (const [k, child] of Object.entries(v)) walk(child, v, k);
      return;
    }
    const text = holder !== undefined && key !== undefined ? texts.get(holder)?.[key] : undefined;
    out.push(text === undefined ? { value: v } : { value: v, text });
  };
  walk(parsed);
  return out;
}

/** Why the forwarded request's mirror headers are not what its body says (empty: they agree). */
function disagreements(a: Arrived): string[] {
  const bad: string[] = [];
  let body: { method?: unknown; params?: Record<string, unknown> };
  try {
    body = JSON.parse(a.body) as typeof body;
  } catch {
    return [`forwarded a body JSON.parse refuses: ${a.body.slice(0, 200)}`];
  }
  const lines = new Map<string, string[]>();
  for (let i = 0; i < a.rawHeaders.length; i += 2) {
    const name = (a.rawHeaders[i] as string).toLowerCase();
    if (name === 'mcp-method' || name === 'mcp-name' || name.startsWith('mcp-param-')) {
      const list = lines.get(name) ?? [];
      list.push(a.rawHeaders[i + 1] as string);
      lines.set(name, list);
    }
  }
  let argsText: string | undefined;
  if (body.params !== undefined && typeof body.params.arguments === 'object') {
    // The arguments' own bytes, to keep number spellings: re-found by a parse of the whole body.
    argsText = argumentsText(a.body);
  }
  for (const [name, values] of lines) {
    if (values.length !== 1) {
      bad.push(`${name} arrived ${values.length} times: ${JSON.stringify(values)}`);
      continue;
    }
    const v = stripOws(values[0] as string);
    if (name === 'mcp-method') {
      if (v !== body.method) bad.push(`Mcp-Method ${v} for ${JSON.stringify(body.method)}`);
    } else if (name === 'mcp-name') {
      const field = typeof body.method === 'string' ? NAME_SOURCE[body.method] : undefined;
      const decoded = sdkDecode(v);
      if (field === undefined || decoded === undefined || decoded !== body.params?.[field])
        bad.push(`Mcp-Name ${v} for ${JSON.stringify(field && body.params?.[field])}`);
      else if (strictDecode(v) !== decoded) bad.push(`Mcp-Name ${v}: a strict Base64 reader refuses it`);
    } else {
      const decoded = sdkDecode(v);
      if (decoded === undefined) {
        bad.push(`${name}: ${v} is malformed to the SDK`);
        continue;
      }
      if (strictDecode(v) !== decoded) bad.push(`${name}: ${v}: a strict Base64 reader refuses it`);
      const prims = primitives(argsText);
      // Some argument the SDK compares equal under some declared type, which an exact reader reads
      // as the same value too.
      const witness = prims.some((p) =>
        (['string', 'integer', 'boolean'] as const).some((t) => {
          if (typeof p.value !== 'number' || p.text === undefined) return sdkEqual(decoded, p.value, t);
          if (exactKey(decoded) !== exactKey(p.text)) return false;
          // A number the SDK does not compare (an integer past 2^53, or past a double's range) may be
          // mirrored in a spelling that denotes it exactly, as the SDK would read one it compares.
          if (sdkString(p.value) === undefined)
            return CANONICAL_DECIMAL.test(decoded) || decoded === String(p.value);
          return sdkEqual(decoded, p.value, t);
        }),
      );
      if (!witness)
        bad.push(`${name}: ${v} (${JSON.stringify(decoded)}) equals no argument of ${argsText ?? '(none)'}`);
    }
  }
  return bad;
}

/** The text of `params.arguments` in a body (the forwarded one is a single message). */
function argumentsText(body: string): string | undefined {
  // Re-serialise with number spellings kept: a reviver that records sources can rebuild them.
  const sources = new Map<number, string>();
  let n = 0;
  const marked = JSON.parse(body, (_k, value: unknown, ctx?: { source?: string }) => {
    if (typeof value === 'number' && ctx?.source !== undefined) {
      const mark = `\u0000num${n}\u0000`;
      sources.set(n++, ctx.source);
      return mark;
    }
    return value;
  }) as { params?: { arguments?: unknown } };
  const args = marked.params?.arguments;
  if (args === undefined) return undefined;
  return JSON.stringify(args).replace(
    /"\\u0000num(\d+)\\u0000"/g,
    (_m, i: string) => sources.get(Number(i)) ?? '',
  );
}

// ---- the generator ----

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NUMBERS = [
  '1',
  '1.0',
  '1e0',
  '1E0',
  '10e-1',
  '-0',
  '0',
  '0.0',
  '1.50',
  '1.5',
  '100',
  '1e2',
  '9007199254740993',
  '9007199254740992',
  '1.00000000000000001',
  '4503599627370496.5',
  '1e400',
  '0.1',
  '-1',
  '5e-324',
  '1e21',
  '123456789012345678901234567890',
];
const STRINGS = [
  'us',
  'eu',
  'US',
  ' us',
  'us ',
  'a, b',
  'a,b',
  '',
  'true',
  'null',
  '1',
  '1.0',
  'grüße',
  '=?base64?dXM=?=',
  'x\ty',
  'é',
  '😀',
  'admin',
];
const KEYS = ['region', 'Region', 'tenant', 'n', 'flag', 'x-y', 'nested', 'a'];

type Gen = () => number;
const pick = <T>(r: Gen, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** A JSON value as text, with the number spellings above; `leaves` collects what a header may mirror. */
function valueText(r: Gen, depth: number, leaves: string[]): string {
  const k = r();
  if (k < 0.35) {
    const s = JSON.stringify(pick(r, STRINGS));
    leaves.push(s);
    return s;
  }
  if (k < 0.65) {
    const t = pick(r, NUMBERS);
    leaves.push(t);
    return t;
  }
  if (k < 0.75) {
    const b = r() < 0.5 ? 'true' : 'false';
    leaves.push(b);
    return b;
  }
  if (k < 0.8) return 'null';
  if (k < 0.85 || depth > 2) return `[${JSON.stringify(pick(r, STRINGS))}]`;
  return objectText(r, depth + 1, leaves);
}

function objectText(r: Gen, depth: number, leaves: string[]): string {
  const n = Math.floor(r() * 4);
  const members: string[] = [];
  const used = new Set<string>();
  for (let i = 0; i < n; i++) {
    let key = pick(r, KEYS);
    // Keys that differ only by case are refused on their own; keep most bodies valid.
    if (used.has(key) || ([...used].some((u) => u.toLowerCase() === key.toLowerCase()) && r() < 0.9))
      continue;
    used.add(key);
    if (r() < 0.05) key = key.replace(/^./, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
    members.push(`"${key}":${valueText(r, depth, leaves)}`);
  }
  return `{${members.join(',')}}`;
}

const b64 = (s: string) => `=?base64?${Buffer.from(s, 'utf8').toString('base64')}?=`;

/** `encodeMcpParamValue` of the 2.x client (needsBase64). */
function clientEncode(s: string): string {
  const plain =
    s !== '' &&
    s === s.trim() &&
    /^[\t\x20-\x7e]*$/.test(s) &&
    !(s.startsWith('=?base64?') && s.endsWith('?='));
  return plain ? s : b64(s);
}

/** The header a 2.x client writes for an argument (its JSON text), or none. */
function clientValue(leaf: string): string | undefined {
  const v = JSON.parse(leaf) as unknown;
  // A client that reads numbers as doubles writes no body number a double does not hold exactly.
  if (typeof v === 'number' && exactKey(String(v)) !== exactKey(leaf)) return undefined;
  const s = sdkString(v);
  return s === undefined ? undefined : clientEncode(s);
}

/** A header value for `leaf` (its JSON text): bent. */
function headerValue(r: Gen, leaf: string | undefined): string {
  if (leaf !== undefined && leaf.startsWith('"')) leaf = JSON.parse(leaf) as string;
  // Node's client writes Latin-1 only (as a header line's obs-text).
  return bentValue(r, leaf).replace(/[^\t\x20-\x7e\x80-\xff]/g, 'é');
}

function bentValue(r: Gen, leaf: string | undefined): string {
  const base = leaf ?? pick(r, [...STRINGS, ...NUMBERS]);
  const k = r();
  if (k < 0.3) return /^[\x20-\x7e]*$/.test(base) && base.trim() === base && base !== '' ? base : b64(base);
  if (k < 0.4) return b64(base);
  if (k < 0.45) {
    // Base64 with the bits after the last character set: atob ignores them, a strict reader refuses.
    const enc = Buffer.from(base, 'utf8').toString('base64');
    const pad = enc.endsWith('==') ? 2 : enc.endsWith('=') ? 1 : 0;
    if (pad === 0) return b64(base);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const at = enc.length - pad - 1;
    const bumped = alphabet[alphabet.indexOf(enc[at] as string) + 1] ?? enc[at];
    return `=?base64?${enc.slice(0, at)}${bumped}${enc.slice(at + 1)}?=`;
  }
  if (k < 0.5) return ` ${base}\t`;
  if (k < 0.55) return base.toUpperCase();
  if (k < 0.65) {
    // Another spelling of a number, or of the leaf.
    const n = Number(base);
    return Number.isNaN(n)
      ? `${base}x`
      : pick(r, [String(n), `${n}.0`, n.toExponential(), `+${base}`, `0${base}`]);
  }
  if (k < 0.7) return `${base}, ${pick(r, STRINGS)}`;
  if (k < 0.75) return pick(r, ['=?base64?=', '=?base64??=', '=?BASE64?dXM=?=', '=?base64?dXM?=', 'dXM=']);
  if (k < 0.8) return base.replace(/[^\x20-\x7e\t]/g, 'é');
  return base;
}

interface Case {
  readonly headers: string[];
  readonly body: string;
  readonly id: string | undefined;
  /** Every mirror header as a 2.x client writes it. */
  readonly conforming: boolean;
}

function makeCase(r: Gen, i: number): Case {
  const method = pick(r, [
    'tools/call',
    'tools/call',
    'tools/call',
    'tools/call',
    'prompts/get',
    'resources/read',
    'ping',
  ]);
  const notification = method === 'tools/call' && r() < 0.05;
  const id = notification ? undefined : `c${i}`;
  const leaves: string[] = [];
  const argsText = objectText(r, 0, leaves);
  let params: string;
  let named: string | undefined;
  let dup = false;
  if (method === 'tools/call') {
    named = pick(r, ['echo', 'echo', 'grüße', 'secret_admin']);
    dup = r() < 0.1;
    const again = dup ? `,"arguments":${objectText(r, 0, leaves)}` : '';
    // Now and then arguments that are no object: a header can mirror nothing in them.
    const bare = r() < 0.03 ? valueText(r, 3, []) : undefined;
    if (bare !== undefined) {
      leaves.push(bare.startsWith('{') ? '"x"' : bare);
      dup = true; // no client writes these (nor the headers below for them)
    }
    params = `{"name":${JSON.stringify(named)},"arguments":${bare ?? argsText}${again},"_meta":${ENVELOPE}}`;
  } else if (method === 'prompts/get') {
    named = pick(r, ['greet', 'grüße']);
    params = `{"name":${JSON.stringify(named)},"_meta":${ENVELOPE}}`;
  } else if (method === 'resources/read') {
    named = pick(r, ['file:///public/a.txt', 'file:///public/é.txt', 'file:///private/k']);
    params = `{"uri":${JSON.stringify(named)},"_meta":${ENVELOPE}}`;
  } else params = `{"_meta":${ENVELOPE}}`;
  const body = `{"jsonrpc":"2.0",${id === undefined ? '' : `"id":"${id}",`}"method":"${method}","params":${params}}`;
  const headers = [
    'Authorization',
    '',
    'Content-Type',
    'application/json',
    'Accept',
    'application/json, text/event-stream',
    'MCP-Protocol-Version',
    MODERN,
  ];
  const paramNames = ['Region', 'Tenant', 'N', 'Flag', 'x_y', "a!#$%&'*+.^_`|~"];
  if (!dup && r() < 0.3) {
    // As a 2.x client writes them: these must be forwarded (or refused for the call itself).
    headers.push('Mcp-Method', method);
    if (named !== undefined) headers.push('Mcp-Name', clientEncode(named));
    if (method === 'tools/call')
      for (const [k, leaf] of leaves.slice(0, paramNames.length).entries()) {
        const v = clientValue(leaf);
        if (v !== undefined) headers.push(`Mcp-Param-${paramNames[k] as string}`, v);
      }
    return { headers, body, id, conforming: true };
  }
  if (r() < 0.8)
    headers.push(
      pick(r, ['Mcp-Method', 'mcp-method', 'MCP-METHOD']),
      r() < 0.9 ? method : pick(r, ['tools/list', ` ${method} `, method.toUpperCase()]),
    );
  if (r() < 0.7)
    headers.push(
      'Mcp-Name',
      r() < 0.85
        ? headerValue(r, named === undefined ? undefined : JSON.stringify(named))
        : pick(r, ['echo', 'secret_admin', 'greet']),
    );
  const params_ = Math.floor(r() * 4);
  for (let p = 0; p < params_; p++) {
    const name = pick(r, [...paramNames, 'region', 'REGION']);
    headers.push(
      `Mcp-Param-${name}`,
      headerValue(r, r() < 0.85 && leaves.length > 0 ? pick(r, leaves) : undefined),
    );
  }
  return { headers, body, id, conforming: false };
}

describe('review-mirror: the 2026-07-28 header mirror', () => {
  const secret = mintKey(randomBytes(32));
  let upstream: Awaited<ReturnType<typeof startRecorder>>;
  let gateway: TestGateway;

  before(async () => {
    upstream = await startRecorder();
    gateway = await startTestGateway(
      keyedConfig(upstream.url, secret, {
        key: {
          allow: ['echo', 'grüße'],
          prompts: ['greet', 'grüße'],
          resources: ['file:///public/*'],
          rate_limit: { capacity: 100_000, refill_per_second: 100_000 },
        },
      }),
    );
  });
  after(async () => {
    agent.destroy();
    await gateway.close(1000);
    await upstream.close();
  });

  async function send(
    c: Case,
  ): Promise<{ status: number; body: string; forwarded: Arrived[]; audit: Record<string, unknown>[] }> {
    const headers = [...c.headers];
    headers[1] = `Bearer ${secret}`;
    const seen = upstream.arrived.length;
    const lines = gateway.auditLines.length;
    const res = await post(gateway.mcpUrl, headers, c.body);
    await waitFor(() => gateway.auditLines.length > lines, 2000, 'the audit line');
    return {
      ...res,
      forwarded: upstream.arrived.slice(seen),
      audit: gateway.auditLines.slice(lines),
    };
  }

  /** A tools/call of echo with `args` (JSON text) and these mirror headers: refused -32020, or forwarded. */
  async function call(args: string, mirror: string[]): Promise<'refused' | 'forwarded' | string> {
    const body = `{"jsonrpc":"2.0","id":"n1","method":"tools/call","params":{"name":"echo","arguments":${args},"_meta":${ENVELOPE}}}`;
    const headers = [
      'Authorization',
      '',
      'Content-Type',
      'application/json',
      'Accept',
      'application/json',
      'MCP-Protocol-Version',
      MODERN,
      'Mcp-Method',
      'tools/call',
      ...mirror,
    ];
    const res = await send({ headers, body, id: 'n1', conforming: false });
    assert.equal(res.audit.length, 1);
    if (res.forwarded.length === 1 && res.status === 200) return 'forwarded';
    const code = (JSON.parse(res.body) as { error?: { code?: number } }).error?.code;
    if (res.forwarded.length === 0 && res.status === 400 && code === -32020) {
      assert.equal(res.audit[0]?.reason, 'ERR_HEADER_MISMATCH');
      return 'refused';
    }
    return `${res.status} ${res.body}`;
  }

  it('hole: Base64 whose last character carries bits past the value (=?base64?ZXV=?= for "eu") passed in Mcp-Param and Mcp-Name, which a strict decoder refuses', async () => {
    // failed before: both were forwarded. atob (so the SDKs) drops the stray bits and reads "eu";
    // Go's StdEncoding.Strict() and Rust's base64 STANDARD engine refuse the value, so a router
    // built on them reads no value where the upstream reads "eu". No client writes it (btoa does not).
    assert.equal(await call('{"region":"eu"}', ['Mcp-Param-Region', '=?base64?ZXV=?=']), 'refused');
    assert.equal(await call('{"region":"eu"}', ['Mcp-Name', '=?base64?ZWNobx==?=']), 'refused');
    // The canonical spellings pass.
    assert.equal(await call('{"region":"eu"}', ['Mcp-Param-Region', '=?base64?ZXU=?=']), 'forwarded');
    assert.equal(await call('{"region":"eu"}', ['Mcp-Name', '=?base64?ZWNobw==?=']), 'forwarded');
  });

  it('hole: Mcp-Param 1e0 or 1E2 passed for an argument spelled so, which the 2.x server compares as another string than 1 or 100', async () => {
    // failed before: forwarded. The SDK server compares a header that is not a plain decimal as a
    // string with String(value): "1e0" is not "1", so it refuses what the gateway let a router read.
    assert.equal(await call('{"n":1e0}', ['Mcp-Param-N', '1e0']), 'refused');
    assert.equal(await call('{"n":1E2}', ['Mcp-Param-N', '1E2']), 'refused');
    // What a client writes for them (String of the double) passes, and so does every plain decimal
    // of the same value, which the SDK compares as a number (refused before: exact spellings only).
    assert.equal(await call('{"n":1e0}', ['Mcp-Param-N', '1']), 'forwarded');
    assert.equal(await call('{"n":1E2}', ['Mcp-Param-N', '100']), 'forwarded');
    assert.equal(await call('{"n":1}', ['Mcp-Param-N', '1.0']), 'forwarded');
    assert.equal(await call('{"n":0.0000001}', ['Mcp-Param-N', '1e-7']), 'forwarded');
  });

  it('hole: Mcp-Param 1 passed for the argument 1.00000000000000001, which exact readers (Go json.Number, BigDecimal, Decimal) read as another number', async () => {
    // failed before: forwarded, as the argument's double is 1. A router reading the header as 1 and
    // an upstream keeping every digit disagree.
    assert.equal(await call('{"n":1.00000000000000001}', ['Mcp-Param-N', '1']), 'refused');
    assert.equal(await call('{"n":4503599627370496.5}', ['Mcp-Param-N', '4503599627370496']), 'refused');
    assert.equal(
      await call('{"n":1.00000000000000001}', ['Mcp-Param-N', '1.00000000000000001']),
      'forwarded',
    );
  });

  it('hole: Mcp-Param "eu" passed for a call whose arguments are the string "eu", which no x-mcp-header can mirror', async () => {
    // failed before: forwarded. `x-mcp-header` annotates a property (the SDKs refuse one on the
    // schema's root), so a header naming the arguments themselves mirrors nothing the upstream reads.
    assert.equal(await call('"eu"', ['Mcp-Param-Region', 'eu']), 'refused');
    assert.equal(await call('{"region":"eu"}', ['Mcp-Param-Region', 'eu']), 'forwarded');
  });

  it('holds: Mcp-Param 1 for the argument 1.0 (and 0 for -0): the same value to every reader', async () => {
    // The known case, decided: 1 and 1.0 are one value to a double, to Go's json.Number read as a
    // number, to BigDecimal's compareTo and to Python's Decimal, and the 2.x server compares a plain
    // decimal header with the argument as numbers. Only a reader comparing the header with the
    // body's text would differ, and the body's text is not what a router without the body has.
    assert.equal(await call('{"n":1.0}', ['Mcp-Param-N', '1']), 'forwarded');
    assert.equal(await call('{"n":-0}', ['Mcp-Param-N', '0']), 'forwarded');
    assert.equal(await call('{"n":1.5}', ['Mcp-Param-N', '1.5e0']), 'refused');
  });

  it('fuzz: every forwarded request carries mirror headers equal to its body, or is refused 400 (-32020) with one audit line', async () => {
    const r = mulberry32(0x6d697272);
    const counts = { cases: 0, conforming: 0, forwarded: 0, mismatch: 0, otherRefusal: 0, withParams: 0 };
    const bad: string[] = [];
    const statuses: Record<string, number> = {};
    const started = Date.now();
    for (let i = 0; i < 5000 && Date.now() - started < 15_000; i++) {
      const c = makeCase(r, i);
      counts.cases++;
      if (c.conforming) counts.conforming++;
      if (c.headers.some((h, j) => j % 2 === 0 && h.toLowerCase().startsWith('mcp-param-')))
        counts.withParams++;
      const res = await send(c);
      const where = `case ${i}: ${JSON.stringify(c.headers.slice(8))} ${c.body}`;
      if (res.audit.length !== 1) bad.push(`${where}: ${res.audit.length} audit lines`);
      if (res.forwarded.length > 0) {
        counts.forwarded++;
        for (const a of res.forwarded) for (const why of disagreements(a)) bad.push(`${where}: ${why}`);
        continue;
      }
      if (c.id === undefined && res.status === 202 && res.body === '') {
        counts.otherRefusal++;
        continue;
      }
      let error: { code?: number } | undefined;
      try {
        error = (JSON.parse(res.body) as { error?: { code?: number } }).error;
      } catch {
        bad.push(`${where}: answered ${res.status} without JSON: ${res.body.slice(0, 100)}`);
        continue;
      }
      if (error?.code === -32020) {
        counts.mismatch++;
        if (c.conforming) bad.push(`${where}: a 2.x client's headers refused: ${res.body}`);
        if (res.status !== 400) bad.push(`${where}: -32020 with ${res.status}`);
        if (res.audit[0]?.reason !== 'ERR_HEADER_MISMATCH')
          bad.push(`${where}: audit says ${String(res.audit[0]?.reason)}`);
      } else if (error === undefined && !(c.id === undefined && res.status === 202)) {
        bad.push(`${where}: not forwarded, yet answered ${res.status} ${res.body.slice(0, 100)}`);
      } else {
        counts.otherRefusal++;
        const e = error as { code?: number; message?: string } | undefined;
        const key = `${res.status} ${String(e?.code)} ${String(e?.message).slice(0, 40)}`;
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
    }
    console.log(`review-mirror fuzz: ${JSON.stringify(counts)} ${JSON.stringify(statuses)}`);
    assert.ok(counts.forwarded > 200 && counts.mismatch > 200, JSON.stringify(counts));
    assert.deepEqual(bad.slice(0, 20), []);
  });
});
