/**
 * Attack review by a differential fuzzer of the request side (fuzzreq). A seeded mutation fuzzer
 * (test/helpers/request-fuzz.ts) sends mutated MCP requests, over raw sockets, through a real
 * gateway whose key is allowed `echo`, `get_*`, the prompt `greet` and `file:///public/*`, to a
 * recording upstream that reads what it receives as real servers do (JSON.parse, a first-wins
 * parser, Go's case folding, and the MCP SDK's own zod schemas). For every case: either the gateway
 * refused (a JSON-RPC error, a 4xx or 5xx status, one audit line, nothing forwarded), or every
 * message the upstream read names only what the key may use, with the method and name the audit
 * line records and the arguments it logged; and the client's reply carries the client's own id.
 *
 * "failed before: ..." tests failed on the code they were written against (the fix is named in the
 * commit that added them); "holds: ..." tests pass and would fail if the defence went.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { clip } from '../../src/audit/clip.ts';
import { caseTwins, makeCase, parseFirstWins, parseJson } from '../helpers/request-fuzz.ts';
import type { Case } from '../helpers/request-fuzz.ts';

interface Received {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly raw: string;
}

/** An upstream that records every POST body and answers each request in it as its method asks. */
async function startRecordingUpstream() {
  const seen: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST') return void res.writeHead(405).end();
      seen.push({ headers: req.headers, raw });
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        return void res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
      }
      const list = (Array.isArray(parsed) ? parsed : [parsed]) as {
        id?: unknown;
        method?: string;
        params?: { uri?: string };
      }[];
      const answers = list
        .filter((m) => m.id !== undefined && m.method !== undefined)
        .map((m) => ({ jsonrpc: '2.0', id: m.id, result: resultFor(m.method as string, m.params?.uri) }));
      if (answers.length === 0) return void res.writeHead(202).end();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(Array.isArray(parsed) ? answers : answers[0]));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function resultFor(method: string, uri: string | undefined): unknown {
  switch (method) {
    case 'tools/call':
      return { content: [{ type: 'text', text: 'ok' }] };
    case 'prompts/get':
      return { messages: [] };
    case 'resources/read':
      return { contents: [{ uri, text: 'x' }] };
    case 'initialize':
      return { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'up', version: '1' } };
    default:
      return {};
  }
}

interface Reply {
  readonly status: number;
  readonly headers: Map<string, string>;
  readonly body: string;
  readonly hung: boolean;
}

/** Writes `bytes` in the pieces `writes` cuts, and reads the answer until the gateway closes. */
function send(port: number, bytes: Buffer, writes: readonly number[], waitMs = 4000): Promise<Reply> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let done = false;
    // Each piece after the first waits a millisecond, so the gateway reads it on its own.
    const socket = connect(port, '127.0.0.1', async () => {
      let from = 0;
      for (const at of [...writes.filter((w) => w < bytes.length), bytes.length]) {
        if (at <= from) continue;
        if (from > 0) await new Promise((r) => setTimeout(r, 1));
        if (socket.destroyed) return;
        socket.write(bytes.subarray(from, at));
        from = at;
      }
    });
    const timer = setTimeout(() => finish(true), waitMs);
    function finish(hung: boolean) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponse(Buffer.concat(got)), hung });
    }
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

function parseResponse(whole: Buffer): Omit<Reply, 'hung'> {
  // An interim `100 Continue` (the client sent `Expect: 100-continue`) comes before the answer.
  let buf = whole;
  while (/^HTTP\/1\.1 1\d\d /.test(buf.subarray(0, 13).toString('latin1'))) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) break;
    buf = buf.subarray(end + 4);
  }
  const text = buf.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = (end < 0 ? text : text.slice(0, end)).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers = new Map<string, string>();
  for (const line of head.slice(1)) {
    const c = line.indexOf(':');
    headers.set(line.slice(0, c).toLowerCase(), line.slice(c + 1).trim());
  }
  let body = end < 0 ? Buffer.alloc(0) : buf.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
  if (headers.get('transfer-encoding') === 'chunked') {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const nl = body.indexOf('\r\n', at);
      if (nl < 0) break;
      const size = parseInt(body.subarray(at, nl).toString('latin1'), 16);
      if (!(size > 0)) break;
      parts.push(body.subarray(nl + 2, nl + 2 + size));
      at = nl + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  }
  return { status, headers, body: body.toString('utf8') };
}

/** The raw request: the defaults, the case's headers (replacing, or beside with `+`), the body. */
function request(port: number, key: string, c: Case): Buffer {
  const lines = new Map<string, [string, string][]>([
    ['host', [['Host', `127.0.0.1:${port}`]]],
    ['authorization', [['Authorization', `Bearer ${key}`]]],
    ['content-type', [['Content-Type', 'application/json']]],
    ['accept', [['Accept', 'application/json, text/event-stream']]],
    ['connection', [['Connection', 'close']]],
  ]);
  for (const [name, value] of c.envelope.headers) {
    const beside = name.startsWith('+');
    const n = beside ? name.slice(1) : name;
    const list = lines.get(n.toLowerCase()) ?? [];
    lines.set(n.toLowerCase(), beside ? [...list, [n, value]] : [[n, value]]);
  }
  let body = c.body;
  if (c.envelope.chunks !== undefined) {
    if (!lines.has('transfer-encoding')) lines.set('transfer-encoding', [['Transfer-Encoding', 'chunked']]);
    const parts: Buffer[] = [];
    let from = 0;
    for (const at of [...c.envelope.chunks, body.length]) {
      if (at <= from) continue;
      const piece = body.subarray(from, at);
      parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
      from = at;
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    body = Buffer.concat(parts);
  } else lines.set('content-length', [['Content-Length', String(c.body.length)]]);
  const head = [...lines.values()]
    .flat()
    .map(([n, v]) => `${n}: ${v}\r\n`)
    .join('');
  return Buffer.concat([Buffer.from(`POST /mcp HTTP/1.1\r\n${head}\r\n`, 'latin1'), body]);
}

type Msg = { id?: unknown; method?: unknown; params?: Record<string, unknown> } & Record<string, unknown>;
type Line = Record<string, unknown>;

const allowedTool = (n: unknown) => n === 'echo' || (typeof n === 'string' && n.startsWith('get_'));
const allowedUri = (u: unknown) =>
  typeof u === 'string' &&
  u.startsWith('file:///public/') &&
  !/(?:^|[/\\]|%2f|%5c)(?:\.|%2e){1,2}(?:[/\\?#]|%2f|%5c|$)/i.test(u);

/**
 * Whether the audit line's arguments are the upstream's, as the audit bounds them (audit/arguments.ts:
 * strings and keys clipped, arrays and objects cut past 64 entries, `[truncated]` past the depth or
 * the line's budget; a kept number spelling is a string).
 */
function sameArguments(logged: unknown, forwarded: unknown): boolean {
  if (logged === '[truncated]') return true;
  if (typeof forwarded === 'number') return logged === forwarded || typeof logged === 'string';
  if (typeof forwarded === 'string')
    return (
      logged === clip(forwarded, 1024) ||
      (typeof logged === 'string' && logged.endsWith('…') && forwarded.startsWith(logged.slice(0, -1)))
    );
  if (Array.isArray(forwarded)) {
    if (!Array.isArray(logged)) return false;
    for (let i = 0; i < logged.length; i++) {
      const l = logged[i] as unknown;
      if (l === '[truncated]') return true;
      if (i === logged.length - 1 && typeof l === 'string' && /^\[\+\d+ items\]$/.test(l))
        return forwarded.length === i + Number(/\d+/.exec(l)?.[0]);
      if (!sameArguments(l, forwarded[i])) return false;
    }
    return logged.length === forwarded.length;
  }
  if (forwarded !== null && typeof forwarded === 'object') {
    if (logged === null || typeof logged !== 'object' || Array.isArray(logged)) return false;
    const l = logged as Record<string, unknown>;
    const f = forwarded as Record<string, unknown>;
    const cut = Object.prototype.hasOwnProperty.call(l, '[truncated]');
    const keys = Object.keys(f);
    const logKeys = Object.keys(l).filter((k) => k !== '[truncated]');
    if (!cut && logKeys.length !== keys.length) return false;
    return keys.every((k) => {
      const name = clip(k, 128) as string;
      if (!Object.prototype.hasOwnProperty.call(l, name)) return cut;
      return sameArguments(l[name], f[k]);
    });
  }
  return Object.is(logged, forwarded) || logged === forwarded;
}

/** What is wrong with one case's outcome (empty: the invariant held). */
/** A client id as the audit line writes it (audit/record.ts: clipped as a name). */
const clipId = (id: unknown): unknown => (typeof id === 'string' ? clip(id, 256) : id);

function judgeCase(c: Case, reply: Reply, lines: Line[], received: Received[]): string[] {
  const bad: string[] = [];
  if (reply.hung) bad.push('hung: no answer within 4 s');
  if (lines.length !== 1) bad.push(`${lines.length} audit lines`);
  const line = lines[0] ?? {};
  const calls = (Array.isArray(line.calls) ? line.calls : [line]) as Line[];
  let sent: unknown;
  try {
    JSON.parse(c.body.toString('utf8'));
    sent = parseJson(c.body.toString('utf8'), 'last');
  } catch {
    sent = undefined;
  }
  const sentIds = new Set<string>();
  for (const m of (Array.isArray(sent) ? sent : [sent]) as Msg[])
    if (m && typeof m === 'object' && m.id !== undefined) sentIds.add(JSON.stringify(m.id));
  // The ids as the audit line writes them (clipped, a lone surrogate as U+FFFD: audit/clip.ts).
  const auditIds = new Set([...sentIds].map((t) => JSON.stringify(clipId(JSON.parse(t) as unknown))));

  // What the upstream read.
  const upstreamMessages: Msg[] = [];
  for (const r of received) {
    let parsed: unknown;
    try {
      JSON.parse(r.raw);
      parsed = parseJson(r.raw, 'last');
    } catch {
      bad.push(`upstream got a body JSON.parse refuses: ${r.raw.slice(0, 200)}`);
      continue;
    }
    try {
      assert.deepEqual(parseFirstWins(r.raw), parsed);
    } catch {
      bad.push(`upstream body reads differently with the first of repeated keys: ${r.raw.slice(0, 300)}`);
    }
    const twins = caseTwins(r.raw);
    if (twins.length > 0) bad.push(`upstream body has keys a case-folding reader merges: ${twins.join(',')}`);
    const list = (Array.isArray(parsed) ? parsed : [parsed]) as Msg[];
    for (const m of list) upstreamMessages.push(m);
    // The 2026-07-28 mirror headers an upstream may route on must name what the body holds.
    const first = list[0];
    const hm = r.headers['mcp-method'];
    if (hm !== undefined && (list.length !== 1 || hm !== first?.method))
      bad.push(`upstream got Mcp-Method ${String(hm)} for ${JSON.stringify(first?.method)}`);
    const hn = r.headers['mcp-name'];
    if (hn !== undefined) {
      const named = first?.params?.name ?? first?.params?.uri;
      let decoded: string | undefined;
      try {
        const v = String(hn);
        decoded = v.startsWith('=?base64?') ? Buffer.from(v.slice(9, -2), 'base64').toString('utf8') : v;
      } catch {
        decoded = undefined;
      }
      if (hn !== named && decoded !== named)
        bad.push(`upstream got Mcp-Name ${String(hn)} for ${JSON.stringify(named)}`);
    }
    // An Mcp-Param-* header names a value the call's arguments hold (a component behind the gateway
    // may route on it).
    for (const [name, value] of Object.entries(r.headers)) {
      if (!name.startsWith('mcp-param-')) continue;
      const v = String(value);
      const decoded = v.startsWith('=?base64?') ? Buffer.from(v.slice(9, -2), 'base64').toString('utf8') : v;
      const args = (list.length === 1 ? list[0]?.params?.arguments : undefined) as unknown;
      const scalars: string[] = [];
      const collect = (x: unknown): void => {
        if (Array.isArray(x)) return x.forEach(collect);
        if (x !== null && typeof x === 'object') return Object.values(x).forEach(collect);
        if (x !== null && x !== undefined) scalars.push(String(x));
      };
      collect(args);
      if (!scalars.includes(decoded)) bad.push(`upstream got ${name}: ${v}, which no argument holds`);
    }
    if (r.headers['content-type'] !== 'application/json' || r.headers['content-encoding'] !== undefined)
      bad.push(
        `upstream got Content-Type ${String(r.headers['content-type'])}, Content-Encoding ${String(r.headers['content-encoding'])}`,
      );
  }
  // The upstream must read what the client sent: each forwarded message equal to one of the
  // client's (as JSON.parse reads both), but for the id the gateway puts in place of the client's.
  const clientMessages = (Array.isArray(sent) ? sent : [sent]) as Msg[];
  const takenClient = new Set<Msg>();
  // (A cancellation's requestId names the gateway's tag of the request it cancels: translated.)
  const withoutId = (m: Msg) => {
    const { id: _id, ...rest } = m;
    if (m.method === 'notifications/cancelled' && m.params !== null && typeof m.params === 'object') {
      const { requestId: _r, ...params } = m.params;
      return { ...rest, params };
    }
    return rest;
  };
  for (const m of upstreamMessages) {
    if (sent === undefined) {
      bad.push('forwarded a body JSON.parse refuses');
      break;
    }
    const twin = clientMessages.find((cm) => {
      if (takenClient.has(cm) || cm === null || typeof cm !== 'object') return false;
      try {
        assert.deepEqual(withoutId(m), withoutId(cm));
        return true;
      } catch {
        return false;
      }
    });
    if (twin === undefined)
      bad.push(`upstream read a message the client did not send: ${JSON.stringify(m).slice(0, 300)}`);
    else takenClient.add(twin);
  }
  const used = new Set<Line>();
  for (const m of upstreamMessages) {
    if (typeof m?.method !== 'string') continue;
    const p = m.params ?? {};
    const match = calls.find((l) => !used.has(l) && l.rpc_method === m.method && l.decision === 'allow');
    if (match === undefined) {
      bad.push(`upstream got ${m.method} that no allowed audit call records: ${JSON.stringify(calls)}`);
      continue;
    }
    used.add(match);
    if (m.method === 'tools/call') {
      if (!allowedTool(p.name)) bad.push(`upstream got a call of ${JSON.stringify(p.name)}`);
      if (match.tool !== p.name)
        bad.push(`audit says tool ${String(match.tool)}, upstream read ${String(p.name)}`);
      const sdk = CallToolRequestSchema.safeParse(m);
      if (sdk.success && sdk.data.params.name !== p.name) bad.push('the SDK reads another tool name');
      if ('arguments' in match && !sameArguments(match.arguments, p.arguments))
        bad.push(
          `audit arguments ${JSON.stringify(match.arguments)} but upstream read ${JSON.stringify(p.arguments)}`,
        );
    } else if (m.method === 'prompts/get') {
      if (p.name !== 'greet') bad.push(`upstream got prompt ${JSON.stringify(p.name)}`);
      if (match.prompt !== p.name) bad.push(`audit says prompt ${String(match.prompt)}`);
      const sdk = GetPromptRequestSchema.safeParse(m);
      if (sdk.success && sdk.data.params.name !== p.name) bad.push('the SDK reads another prompt name');
    } else if (m.method === 'resources/read') {
      if (!allowedUri(p.uri)) bad.push(`upstream got a read of ${JSON.stringify(p.uri)}`);
      if (match.resource !== p.uri) bad.push(`audit says resource ${String(match.resource)}`);
      const sdk = ReadResourceRequestSchema.safeParse(m);
      if (sdk.success && sdk.data.params.uri !== p.uri) bad.push('the SDK reads another uri');
    } else if (m.method === 'completion/complete') {
      const ref = (p.ref ?? {}) as { type?: unknown; name?: unknown; uri?: unknown };
      if (ref.type === 'ref/prompt' ? ref.name !== 'greet' : !allowedUri(ref.uri))
        bad.push(`upstream got a completion of ${JSON.stringify(ref)}`);
      const sdk = CompleteRequestSchema.safeParse(m);
      const read = sdk.success ? (sdk.data.params.ref as typeof ref) : undefined;
      if (read !== undefined && (read.type !== ref.type || read.name !== ref.name || read.uri !== ref.uri))
        bad.push('the SDK reads another ref');
    } else if (m.method === 'resources/subscribe') {
      if (!allowedUri(p.uri)) bad.push(`upstream got a subscription to ${JSON.stringify(p.uri)}`);
    } else if (
      ![
        'logging/setLevel',
        'initialize',
        'ping',
        'notifications/initialized',
        'notifications/cancelled',
        'tools/list',
        'prompts/list',
      ].includes(m.method)
    )
      bad.push(`upstream got method ${m.method}`);
  }

  // What the audit line says each call was: what the client's message says (as JSON.parse reads it
  // unprimed), never a name or id it does not hold.
  if (sent !== undefined) {
    const said = clientMessages.filter((m) => m !== null && typeof m === 'object');
    for (const call of calls) {
      const named = call.tool ?? call.prompt ?? call.resource;
      if (typeof call.rpc_method !== 'string' || named === undefined) continue;
      const max = call.resource !== undefined ? 1024 : 256;
      const holds = said.some((m) => {
        if (m.method !== call.rpc_method) return false;
        const p = m.params ?? {};
        const ref = (p.ref ?? {}) as { name?: unknown; uri?: unknown };
        return [p.name, p.uri, ref.name, ref.uri].some(
          (v) => typeof v === 'string' && clip(v, max) === named,
        );
      });
      if (!holds)
        bad.push(
          `the audit line says ${call.rpc_method} of ${JSON.stringify(named)}, which the body does not`,
        );
      if ('rpc_id' in call && !auditIds.has(JSON.stringify(call.rpc_id)) && call.rpc_id !== null)
        bad.push(`the audit line says id ${JSON.stringify(call.rpc_id)}, which the body does not`);
    }
  }

  // What the client read.
  let answer: unknown;
  const type = reply.headers.get('content-type') ?? '';
  if (reply.body !== '' && !(reply.status === 202 && reply.body === 'Accepted')) {
    try {
      answer = type.startsWith('text/event-stream')
        ? reply.body
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => JSON.parse(l.slice(5)) as unknown)
        : JSON.parse(reply.body);
    } catch {
      bad.push(`reply body is not JSON: ${reply.status} ${reply.body.slice(0, 200)}`);
    }
  }
  const answers = (Array.isArray(answer) ? answer : answer === undefined ? [] : [answer]) as Msg[];
  for (const a of answers) {
    if (a === null || typeof a !== 'object') {
      bad.push(`reply holds a non-object: ${JSON.stringify(a)}`);
      continue;
    }
    if ('result' in a && !sentIds.has(JSON.stringify(a.id)))
      bad.push(`a result with id ${JSON.stringify(a.id)}, not one the client sent`);
    if ('error' in a && a.id !== null && !sentIds.has(JSON.stringify(a.id)))
      bad.push(`an error with id ${JSON.stringify(a.id)}, not one the client sent`);
  }
  if (received.length === 0) {
    const codes = answers.map((a) => (a && typeof a === 'object' ? (a.error as { code?: number })?.code : 0));
    if (reply.status === 202) {
      // Accepted: only notifications, and only when they were forwarded.
      // A refused notification has no answer to carry an error (JSON-RPC): its line says why.
      if (upstreamMessages.length === 0 && line.decision === 'allow')
        bad.push(`202 with nothing forwarded (audit: ${JSON.stringify(line)})`);
    } else if (answers.length === 0 || codes.some((code) => typeof code !== 'number'))
      bad.push(`refused without a JSON-RPC error: ${reply.status} ${reply.body.slice(0, 200)}`);
    else if (
      reply.status < 400 &&
      !codes.every((code) => code === -32600 || code === -32601 || code === -32602)
    )
      bad.push(`status ${reply.status} for a refused request: ${reply.body.slice(0, 200)}`);
  }
  if (line.status !== reply.status && !reply.hung)
    bad.push(`audit status ${String(line.status)}, client got ${reply.status}`);
  return bad;
}

describe('review: a differential fuzzer of the request side (fuzzreq)', () => {
  const key = newKey();
  let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>;
  let gw: TestGateway;
  let quiet: TestGateway;

  before(async () => {
    upstream = await startRecordingUpstream();
    gw = await startTestGateway(
      reviewConfig(
        upstream.url,
        [{ label: 'k', key, allow: ['echo', 'get_*'], capacity: 100_000 }],
        'audit:\n  log_arguments: true\n',
        { secret: 's'.repeat(40), resources: ['file:///public/*'] },
      ).replace('    resources:', '    prompts: ["greet"]\n    resources:'),
    );
    // The same key with arguments left unread (no audit.log_arguments): the skeleton and splice path.
    quiet = await startTestGateway(
      reviewConfig(upstream.url, [{ label: 'k', key, allow: ['echo', 'get_*'], capacity: 100_000 }], '', {
        secret: 's'.repeat(40),
        resources: ['file:///public/*'],
      }).replace('    resources:', '    prompts: ["greet"]\n    resources:'),
    );
  });
  after(async () => {
    await quiet?.close(100);
    await gw?.close(100);
    await upstream?.close();
  });

  /** The body of the last answer run() read (for the fuzzer's counts). */
  let lastReply = '';

  async function run(c: Case, gw: TestGateway): Promise<string[]> {
    if (c.pre !== undefined) {
      const port = Number(new URL(gw.url).port);
      const pre: Case = {
        ...c,
        pre: undefined,
        body: c.pre,
        envelope: { ...c.envelope, headers: [], chunks: undefined, writes: [] },
      };
      const before = gw.auditLines.length;
      await send(port, request(port, key, pre), []);
      for (let i = 0; i < 100 && gw.auditLines.length === before; i++)
        await new Promise((r) => setTimeout(r, 5));
    }
    const lines0 = gw.auditLines.length;
    if (process.env.FUZZREQ_ONLY !== undefined)
      console.log(
        request(Number(new URL(gw.url).port), 'KEY', c)
          .toString('latin1')
          .slice(0, 600),
        c.envelope,
      );
    const seen0 = upstream.seen.length;
    const port = Number(new URL(gw.url).port);
    const reply = await send(port, request(port, key, c), c.envelope.writes);
    lastReply = reply.body;
    for (let i = 0; i < 100 && gw.auditLines.length === lines0; i++)
      await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setImmediate(r));
    if (process.env.FUZZREQ_ONLY !== undefined)
      console.log(reply.status, reply.body.slice(0, 300), gw.auditLines.slice(lines0));
    return judgeCase(c, reply, gw.auditLines.slice(lines0), upstream.seen.slice(seen0));
  }

  const SEED = Number(process.env.FUZZREQ_SEED ?? 1);
  const CASES = Number(process.env.FUZZREQ_CASES ?? 2000);

  it(`holds: ${CASES} fuzzed requests (seed ${SEED}) are each refused or forwarded as judged`, async () => {
    const failures: string[] = [];
    const only = process.env.FUZZREQ_ONLY === undefined ? undefined : Number(process.env.FUZZREQ_ONLY);
    const outcomes = new Map<string, number>();
    for (let n = 0; n < CASES; n++) {
      if (only !== undefined && n !== only) continue;
      const c = makeCase(SEED, n);
      const on = n % 2 === 0 ? gw : quiet;
      const bad = await run(c, on);
      const o = `${on.auditLines.at(-1)?.status}`;
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      if (c.pre !== undefined) outcomes.set('primed', (outcomes.get('primed') ?? 0) + 1);
      if (lastReply.includes('not read as it is spelled'))
        outcomes.set('misread seen', (outcomes.get('misread seen') ?? 0) + 1);
      if (bad.length > 0)
        failures.push(
          `case ${n}${n % 2 === 0 ? '' : ' (unread arguments)'} [${c.tags.join(' ')}] ${JSON.stringify(c.body.toString('latin1').slice(0, 400))}: ${bad.join('; ')}`,
        );
    }
    if (process.env.FUZZREQ_VERBOSE) console.log(JSON.stringify([...outcomes].sort()));
    assert.deepEqual(failures, []);
  });

  it('failed before: a head Node refuses, with a body behind it in several reads, gets one audit line and its 400', async () => {
    // Found by the fuzzer (a chunked body behind `Transfer-Encoding: chunked, chunked`). Node hands
    // every read of a socket to the HTTP parser that already failed, and the listener's clientError
    // answered the first and recorded it, then took the next read's failure for a second request:
    // a second audit line, and a destroy that could reset the connection before the client read
    // the answer.
    const port = Number(new URL(gw.url).port);
    for (const head of [
      'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
      'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n',
    ]) {
      const before = gw.auditLines.length;
      const socket = connect(port, '127.0.0.1');
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
      socket.on('error', () => {});
      await new Promise((r) => socket.once('connect', r));
      socket.write(head);
      for (let i = 0; i < 64; i++) socket.write('x'.repeat(64 * 1024));
      await new Promise((r) => setTimeout(r, 300));
      socket.destroy();
      assert.match(got, /^HTTP\/1\.1 400 /, head);
      const lines = gw.auditLines.slice(before);
      assert.equal(lines.length, 1, `${lines.length} audit lines for one request: ${head}`);
      assert.equal(lines[0]?.reason, 'ERR_INVALID_REQUEST');
    }
  });

  it("failed before: a request Node's parser refuses gets a JSON-RPC error, not an empty answer", async () => {
    // Found by the fuzzer (a NUL in an Mcp-Name header, a doubled Transfer-Encoding): clientError
    // answered 400, 431 or 408 with no body, where every other refusal says why in a JSON-RPC error.
    const port = Number(new URL(gw.url).port);
    for (const [head, status] of [
      ['POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Name: a\u0000b\r\nContent-Length: 2\r\n\r\n{}', 400],
      ['POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n', 400],
      [`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ] as const) {
      const reply = await send(port, Buffer.from(head, 'latin1'), []);
      assert.equal(reply.status, status);
      assert.equal(reply.headers.get('content-type'), 'application/json');
      const body = JSON.parse(reply.body) as { id: unknown; error: { code: number; message: string } };
      assert.equal(body.id, null);
      assert.equal(body.error.code, -32600);
    }
  });

  it('holds: a body split at every byte, in two socket writes or two chunks, is judged and forwarded whole', async () => {
    // Bodies whose pieces would each mean something else: a multi-byte character, a surrogate pair
    // and escapes cut in two, a denied name in a batch, a repeated name.
    const bodies = [
      '{"jsonrpc":"2.0","id":"é😀","method":"tools/call","params":{"name":"echo","arguments":{"t":"\\ud83d\\ude00é\\"","n":1.0}}}',
      '[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"s\\u0065cret"}}]',
      '{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///private/key","uri":"file:///public/ü"}}',
    ];
    const failures: string[] = [];
    let cases = 0;
    for (const text of bodies) {
      const body = Buffer.from(text);
      for (let at = 1; at < body.length; at++) {
        for (const chunked of [false, true]) {
          const on = at % 2 === 0 ? gw : quiet;
          const plain: Case = {
            n: at,
            body,
            envelope: { headers: [], chunks: undefined, writes: [], tags: [] },
            tags: [],
          };
          // A socket write boundary `at` bytes into the body (the head is as long as run() sends).
          const head = request(Number(new URL(on.url).port), key, plain).length - body.length;
          const c: Case = {
            ...plain,
            envelope: {
              headers: [],
              chunks: chunked ? [at] : undefined,
              writes: chunked ? [] : [head + at],
              tags: [],
            },
            tags: [chunked ? 'chunked' : 'split'],
          };
          cases++;
          const bad = await run(c, on);
          if (bad.length > 0)
            failures.push(`${text} at ${at} ${chunked ? 'chunked' : 'split'}: ${bad.join('; ')}`);
        }
      }
    }
    assert.ok(cases > 500);
    assert.deepEqual(failures, []);
  });

  /** Sends `body` (ASCII, as written) as the fuzzer's plain case would, with `headers` replacing its own. */
  async function sendBody(body: string, headers: [string, string][] = []): Promise<Reply> {
    const port = Number(new URL(gw.url).port);
    const c: Case = {
      n: 0,
      body: Buffer.from(body),
      envelope: { headers, chunks: undefined, writes: [], tags: [] },
      tags: [],
    };
    return send(port, request(port, key, c), []);
  }

  /**
   * Whether this process's JSON.parse has the misread at all (V8 of Node 24 and 26, not Node 22):
   * the tests that need it say why they are skipped rather than fail on a V8 without it.
   */
  const MISREAD = (() => {
    JSON.parse('{"fzq0":1,"n\\\\u0":1}');
    return !('name' in (JSON.parse('{"fzq0":1,"n\\u0061me":2}') as object));
  })();
  const NO_MISREAD = "this Node's JSON.parse does not misread a primed key";

  // V8's JSON.parse reads a key spelled with an escape as an earlier key, in the same place of an
  // object, that spells the escape's first characters (key-check.ts). The place is the keys before
  // it; the tests below start their objects with a key nothing else in this process spells, so
  // the one earlier body primes it.

  it(
    'failed before: a body whose repeated id JSON.parse was primed to misread is refused with id null',
    { skip: MISREAD ? false : NO_MISREAD },
    async () => {
      // Found by the fuzzer. After a body with a key `i\` beside `id`, JSON.parse reads the key of
      // `"i\u0064":99` in the next body as `i\`, not as a second `id`; the gateway sees the misread
      // and refuses the body, but answered with the id of the value it misread (8), which is not the
      // id the client's message means (99: the last of repeated members, as JSON.parse reads it
      // unprimed). JSON-RPC's answer for an id that cannot be read is null.
      await sendBody('{"fzq1":1,"id":8,"i\\\\":0,"jsonrpc":"2.0","method":"ping"}');
      const reply = await sendBody('{"fzq1":1,"id":8,"i\\u0064":99,"jsonrpc":"2.0","method":"ping"}');
      assert.equal(reply.status, 400);
      const body = JSON.parse(reply.body) as { id: unknown; error: { code: number; message: string } };
      assert.equal(body.error.code, -32600);
      assert.match(body.error.message, /not read as it is spelled/, 'the harness did not prime the misread');
      assert.equal(body.id, null);
    },
  );

  it(
    'failed before: a body refused for an escaped quote in a key gets no id a primed misread read',
    { skip: MISREAD ? false : NO_MISREAD },
    async () => {
      // Found by the fuzzer (seed 36): the refusal of a key holding `\"` comes before the misread
      // check, and answered with the misread value's id too.
      await sendBody('{"fzq4":1,"id":8,"i\\\\":0,"jsonrpc":"2.0","method":"ping","params":{"q":1}}');
      const reply = await sendBody(
        '{"fzq4":1,"id":8,"i\\u0064":99,"jsonrpc":"2.0","method":"ping","params":{"a\\"b":1}}',
      );
      assert.equal(reply.status, 400);
      const body = JSON.parse(reply.body) as { id: unknown; error: { code: number; message: string } };
      assert.match(body.error.message, /escaped quote/);
      assert.equal(body.id, null);
    },
  );

  it(
    'failed before: a body refused before it is inspected gets no id a primed misread read',
    { skip: MISREAD ? false : NO_MISREAD },
    async () => {
      // The same misread in the lone JSON.parse that peeks at a body refused before it is judged (a
      // 415, a 401, a 429): the answer carried the id 8.
      await sendBody('{"fzq2":1,"id":8,"i\\\\":0,"jsonrpc":"2.0","method":"ping"}');
      const reply = await sendBody('{"fzq2":1,"id":8,"i\\u0064":99,"jsonrpc":"2.0","method":"ping"}', [
        ['Content-Type', 'text/plain'],
      ]);
      assert.equal(reply.status, 415);
      assert.equal((JSON.parse(reply.body) as { id: unknown }).id, null);
    },
  );

  it(
    'failed before: the audit line of a 429 names no call a primed misread read',
    { skip: MISREAD ? false : NO_MISREAD },
    async () => {
      // withPeekedId records what a small body says it is on the line of a request refused for its
      // bucket; read by the same lone JSON.parse, `"n\u0061me":"secret"` beside `"name":"echo"` was
      // recorded as a call of echo (the bytes call secret: the last of two `name` members).
      const limited = await startTestGateway(
        reviewConfig(upstream.url, [{ label: 'k', key, allow: ['echo'], capacity: 1 }], '', {
          secret: 's'.repeat(40),
          resources: [],
        }).replace('refill_per_second: 1000', 'refill_per_second: 0.001'),
      );
      try {
        const port = Number(new URL(limited.url).port);
        const call = (name: string): Case => ({
          n: 0,
          body: Buffer.from(
            `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"fzq3":1,"name":"echo",${name},"arguments":{}}}`,
          ),
          envelope: { headers: [], chunks: undefined, writes: [], tags: [] },
          tags: [],
        });
        // The bucket's one token goes to the body that primes the misread.
        await send(port, request(port, key, call('"n\\\\u0":1')), []);
        const reply = await send(port, request(port, key, call('"n\\u0061me":"secret"')), []);
        assert.equal(reply.status, 429);
        for (let i = 0; i < 100 && limited.auditLines.length < 2; i++)
          await new Promise((r) => setTimeout(r, 5));
        const line = limited.auditLines.at(-1) as Line;
        assert.equal(line.decision, 'rate_limited');
        assert.notEqual(
          line.tool,
          'echo',
          `the line names a tool the request did not call: ${JSON.stringify(line)}`,
        );
      } finally {
        await limited.close(100);
      }
    },
  );
});
