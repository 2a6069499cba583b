/**
 * Micro-benchmark of the request side's own steps (issue 14), per request, in one process:
 * finding and checking the API key (credential extraction, checksum, SHA-256, lookup), a session
 * id answered from the verified cache, tagging the forwarded request's id, the audit record object
 * (no longer on the request path), the request id with the context, the copy of the Mcp-* headers
 * that inspect checks against the body, the strict parse of the bench's tools/call body, and the
 * upstream request's header list with the undici request object built from it. Not part of the
 * tests.
 *
 *   node --max-semi-space-size=64 --min-semi-space-size=64 bench/request-micro.ts [--ops 100000]
 *     [--rounds 5] [--against /path/to/other/checkout]
 *
 * Each line is the median over alternating rounds of the CPU time (user + system) per operation,
 * and the bytes it allocates (heap and Buffers; run with --max-semi-space-size=64
 * --min-semi-space-size=64 so a batch runs without a scavenge).
 * With `--against`, the same operations run on that checkout's modules too, round by round
 * interleaved with this one's: an A/B in one process, under one load.
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseConfigText } from '../src/config/load.ts';
import type * as KeyringModule from '../src/auth/keyring.ts';
import type * as CredentialsModule from '../src/auth/credentials.ts';
import type * as KeyFormatModule from '../src/auth/key-format.ts';
import type * as TagModule from '../src/integrity/request-tag.ts';
import type * as ContextModule from '../src/pipeline/context.ts';
import type * as RequestIdModule from '../src/pipeline/request-id.ts';
import type * as SessionModule from '../src/pipeline/session.ts';
import type * as BindingModule from '../src/auth/session-binding.ts';
import type * as RecordModule from '../src/audit/record.ts';
import type * as RequestHeadersModule from '../src/proxy/request-headers.ts';
import type * as PolicyHeadersModule from '../src/policy/headers.ts';
import type * as ParseModule from '../src/jsonrpc/parse.ts';
import type * as MethodsModule from '../src/policy/methods.ts';
import { CALL } from './measure.ts';
import { createRequire } from 'node:module';

/** undici's request object, as `Pool.dispatch` builds it from the options and the header list. */
const UndiciRequest = createRequire(import.meta.url)('undici/lib/core/request.js') as new (
  origin: string,
  options: object,
  handler: object,
) => unknown;
const noHandler = { onRequestStart() {}, onResponseStart() {}, onResponseData() {}, onResponseEnd() {} };

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '5' },
    against: { type: 'string' },
  },
});
const OPS = Number(values.ops);
const ROUNDS = Number(values.rounds);

const key = (
  (await import(
    pathToFileURL(resolve(import.meta.dirname, '../src/auth/key-format.ts')).href
  )) as typeof KeyFormatModule
).mintKey(randomBytes(32));
const others = Array.from({ length: 20 }, () => randomBytes(32).toString('hex'));
const { config } = parseConfigText(
  [
    'upstream: {url: "http://127.0.0.1:1/mcp"}',
    'keys:',
    `  - {label: bench, hash: "sha256:${createHash('sha256').update(key).digest('hex')}", allow: ["*"]}`,
    ...others.map((hex, i) => `  - {label: other${i}, hash: "sha256:${hex}", allow: ["*"]}`),
  ].join('\n'),
  {},
  Date.now(),
);
if (config === undefined) throw new Error('bench config did not load');
const grants = { tool: () => true, prompt: () => true, resource: () => true, root: () => false };

/** The headers of the pipeline bench's request, as Node gives them. */
const rawHeaders = [
  'Host',
  '127.0.0.1:8080',
  'Content-Type',
  'application/json',
  'Accept',
  'application/json, text/event-stream',
  'Authorization',
  `Bearer ${key}`,
  'Mcp-Session-Id',
  'a-session',
  'MCP-Protocol-Version',
  '2025-06-18',
  'Content-Length',
  '120',
];
const headers: Record<string, string> = {};
for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] = rawHeaders[i + 1]!;
const req = {
  method: 'POST',
  url: '/mcp',
  headers,
  rawHeaders,
  socket: { remoteAddress: '127.0.0.1' },
} as unknown as IncomingMessage;
const res = {} as ServerResponse;

interface Subject {
  readonly name: string;
  readonly ops: Map<string, () => void>;
}

async function load(name: string, root: string): Promise<Subject> {
  const at = (file: string) => pathToFileURL(resolve(root, 'src', file)).href;
  const keyringMod = (await import(at('auth/keyring.ts'))) as typeof KeyringModule;
  const credMod = (await import(at('auth/credentials.ts'))) as typeof CredentialsModule;
  const tagMod = (await import(at('integrity/request-tag.ts'))) as typeof TagModule;
  const ctxMod = (await import(at('pipeline/context.ts'))) as typeof ContextModule;
  const idMod = (await import(at('pipeline/request-id.ts'))) as typeof RequestIdModule;
  const sessionMod = (await import(at('pipeline/session.ts'))) as typeof SessionModule;
  const bindingMod = (await import(at('auth/session-binding.ts'))) as typeof BindingModule;
  const recordMod = (await import(at('audit/record.ts'))) as typeof RecordModule;
  const headersMod = (await import(at('proxy/request-headers.ts'))) as typeof RequestHeadersModule;
  const policyHeadersMod = (await import(at('policy/headers.ts'))) as typeof PolicyHeadersModule;
  const parseMod = (await import(at('jsonrpc/parse.ts'))) as typeof ParseModule;
  const methodsMod = (await import(at('policy/methods.ts'))) as typeof MethodsModule;
  // The pipeline bench's tools/call, as the body reader hands it over (the audit reads no arguments).
  const callBody = Buffer.from(CALL);
  const requestHeaders = headersMod.createRequestHeaders({
    forward: [],
    staticHeaders: {},
    forwardedHost: () => '127.0.0.1:8080',
    forwardedProto: 'http',
  });
  const body = Buffer.alloc(150, 0x20);
  const keyring = keyringMod.createKeyring(config!.keys, () => grants, { now: Date.now });
  const tagger = tagMod.createRequestTagger(Buffer.alloc(32, 3));
  const bindingId = `k:${'0123456789abcdef'.repeat(4)}`;
  const sessions = sessionMod.createSessionStep(bindingMod.createSessionBinder(Buffer.alloc(32, 5)));
  const principal = { bindingId };
  const sessionCtx = () => ({ principal, session: undefined }) as unknown as ContextModule.RequestContext;
  const sessionId = sessions.outbound(sessionCtx(), 'b9a8e4f0-3c1d-4e2a-9f6b-7d5c3a1e0f42');
  // A fresh string per request (its hash not yet computed), as the HTTP parser makes it from bytes.
  const sessionBytes = Buffer.from(sessionId, 'latin1');
  // A finished allowed tools/call, as the observer gets it.
  const finished = ctxMod.createContext('b9a8e4f0-3c1d-4e2a-9f6b-7d5c3a1e0f42', req, res, 0, 0);
  const keyResult = keyring.authenticate(key);
  if (keyResult.ok) finished.principal = keyResult.principal;
  finished.calls.push({ rpc_method: 'tools/call', rpc_id: 7, tool: 'search_issues', decision: 'allow' });
  Object.assign(finished, { status: 200, bytesIn: 120, bytesOut: 300, upstreamMs: 0.5 });
  let sink: unknown;
  const ops = new Map<string, () => void>([
    [
      'auth: find the credential, check and look up the key',
      () => {
        const c = credMod.extractCredential(req.headers, req.rawHeaders, req.url!);
        if (!c.ok) throw new Error('no credential');
        const r = keyring.authenticate(c.secret);
        if (!r.ok) throw new Error('key refused');
        sink = r;
      },
    ],
    [
      'session: a remembered bound id',
      () => (sink = sessions.inbound(sessionCtx(), sessionBytes.toString('latin1'))),
    ],
    ['tag the forwarded request id (HMAC)', () => (sink = tagger.tag(bindingId, 7, 'none'))],
    // The record object: since c969d7a the gateway writes the line in place without it
    // (bench/observer-micro.ts times that); kept so builds before it compare alike.
    [
      'audit record object (not on the request path)',
      () => (sink = recordMod.buildAuditRecord(finished, Date.now(), 1)),
    ],
    ['request id + context', () => (sink = ctxMod.createContext(idMod.requestIdFor(req), req, res, 0, 0))],
    ['the Mcp-* headers the body is checked against', () => (sink = policyHeadersMod.mcpHeaders(rawHeaders))],
    [
      "parse the bench's tools/call (strict, lossless)",
      () => (sink = parseMod.parseBody(callBody, methodsMod.KNOWN_METHODS, parseMod.BODY_LIMITS, false)),
    ],
    [
      'upstream headers and undici request of a POST',
      () => {
        // The last argument was the body's length, now whether there is one: 150 is both.
        const list = requestHeaders(req.headers, '127.0.0.1', 'rid', 'a-session', 150 as never);
        sink = new UndiciRequest(
          'http://127.0.0.1:9000',
          { path: '/mcp', method: 'POST', headers: list, body },
          noHandler,
        );
      },
    ],
  ]);
  void sink;
  return { name, ops };
}

/**
 * Bytes one op allocates, on the heap and outside it (Buffers' backing stores): growth over a batch
 * short enough to run without a scavenge (run with --max-semi-space-size=64 --min-semi-space-size=64;
 * a batch a collection cut into is retried).
 */
function allocated(op: () => void): number {
  const BATCH = 2_000;
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = process.memoryUsage();
    for (let i = 0; i < BATCH; i++) op();
    const after = process.memoryUsage();
    const bytes = after.heapUsed - before.heapUsed + (after.external - before.external);
    if (bytes >= 0) return bytes / BATCH;
  }
  return NaN;
}

function time(op: () => void): number {
  for (let i = 0; i < 5_000; i++) op();
  const cpu = process.cpuUsage();
  for (let i = 0; i < OPS; i++) op();
  const used = process.cpuUsage(cpu);
  return ((used.user + used.system) * 1000) / OPS;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);
const avg = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

const subjects = [await load('this', resolve(import.meta.dirname, '..'))];
if (values.against !== undefined) subjects.push(await load('against', values.against));
console.log(`node ${process.version}, ${OPS} ops x ${ROUNDS} rounds, load average ${avg()}`);
const labels = [...subjects[0]!.ops.keys()];
const results = new Map<string, number[]>();
for (let round = 0; round < ROUNDS; round++) {
  for (const label of labels) {
    const order = round % 2 === 0 ? subjects : [...subjects].reverse();
    for (const subject of order) {
      const key = `${subject.name}\0${label}`;
      results.set(key, [...(results.get(key) ?? []), time(subject.ops.get(label)!)]);
    }
  }
}
const cpuOf = (name: string, label: string) => median(results.get(`${name}\0${label}`) ?? [NaN]);
const bytesOf = new Map(
  subjects.flatMap((s) =>
    labels.map((label) => [`${s.name}\0${label}`, allocated(s.ops.get(label)!)] as const),
  ),
);
for (const label of labels) {
  const parts = subjects.map(
    (s) =>
      `${s.name} ${fmt(cpuOf(s.name, label)).padStart(9)} ${bytesOf.get(`${s.name}\0${label}`)!.toFixed(0).padStart(5)} B`,
  );
  const ratio =
    subjects.length === 2
      ? `  this/against ${(cpuOf('this', label) / cpuOf('against', label)).toFixed(2)}`
      : '';
  console.log(`${label.padEnd(54)} ${parts.join('  ')}${ratio}`);
}
console.log(`load average after: ${avg()}`);
