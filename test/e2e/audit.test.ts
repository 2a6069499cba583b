/**
 * Issue 6: the audit log and the metrics of a real `mcpgate serve` process.
 *
 * Every request this file makes to the MCP endpoint is written down (`sent`) with what its audit
 * line must say. After the process has exited, the audit output must hold EXACTLY those lines, one
 * per request, matched by the X-Request-Id each response carried, with every documented field.
 * The metrics are scraped before and after the same requests, and every counter must have moved by
 * exactly what those requests account for (and every other series by zero).
 *
 * The first gateway audits to a file and serves metrics on its own listener, in front of a real
 * stateful SDK upstream (sessions, SSE); it also goes through SIGHUP (logrotate) and a SIGTERM with a
 * GET stream, a slow call and a call that outlasts the grace period open. The second audits to stdout
 * in front of a dead port.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { sessionTag } from '../../src/auth/session-binding.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';
import { freePort, waitFor } from '../helpers/net.ts';
import { forwards } from '../helpers/tags.ts';

const PROTOCOL = '2025-06-18';
const UA = 'audit-e2e/1.0 (node:test)';
const ACCEPT_BOTH = 'application/json, text/event-stream';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Every field an audit line may carry (src/audit/record.ts); anything else is a defect. */
const FIELDS = new Set([
  'time',
  'request_id',
  'key',
  'key_id',
  'sub',
  'client_ip',
  'http_method',
  'rpc_method',
  'rpc_id',
  'tool',
  'prompt',
  'resource',
  'arguments',
  'calls',
  'decision',
  'reason',
  'status',
  'latency_ms',
  'upstream_ms',
  'bytes_in',
  'bytes_out',
  'session',
  'protocol_version',
  'aborted',
  'user_agent',
]);

type Decision = 'allow' | 'deny' | 'rate_limited' | 'unauthenticated' | 'invalid' | 'upstream_error';
type AuditLine = Record<string, unknown>;

interface TestKey {
  readonly label: string;
  readonly secret: string;
  readonly keyId: string;
  readonly config: Record<string, unknown>;
}

function makeKey(label: string, allow: string[], rateLimit?: Record<string, unknown>): TestKey {
  const secret = mintKey(randomBytes(32));
  const hex = sha256Hex(secret);
  return {
    label,
    secret,
    keyId: hex.slice(0, 8),
    config: { label, hash: `sha256:${hex}`, allow, ...(rateLimit ? { rate_limit: rateLimit } : {}) },
  };
}

interface ExpectedCall {
  readonly rpc_method: string;
  readonly rpc_id?: string | number;
  readonly tool?: string;
  readonly decision: Decision;
}

/** What one request's audit line must say. */
interface Expected {
  readonly http_method: 'GET' | 'POST' | 'DELETE';
  readonly rpc_method?: string;
  readonly rpc_id?: string | number;
  readonly tool?: string;
  readonly calls?: readonly ExpectedCall[];
  readonly decision: Decision;
  readonly reason?: string;
  readonly status: number;
  readonly key?: TestKey;
  /** Whether the request reached the upstream and got its response headers (upstream_ms). */
  readonly upstream: boolean;
  /** The client-facing Mcp-Session-Id the request used or was given. */
  readonly session?: string;
  readonly protocolVersion?: string;
  readonly aborted: boolean;
  /** The `rpc_method` label of mcpgate_requests_total: a method, `batch` or `none`. */
  readonly metricMethod: string;
}

interface Sent extends Expected {
  /** The X-Request-Id of the response. */
  readonly id: string;
  readonly bytesIn: number;
  /** Exact when the whole response was read; undefined for streams cut short. */
  readonly bytesOut: number | undefined;
  /** decision, reason and status are asserted by a test of their own. */
  readonly outcomeCheckedElsewhere?: boolean;
}

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  readonly id: string;
}

const rpc = (id: number | string, method: string, params?: unknown) =>
  JSON.stringify(
    params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params },
  );
const toolCall = (id: number | string, name: string, args: Record<string, unknown> = {}, meta?: unknown) =>
  rpc(
    id,
    'tools/call',
    meta === undefined ? { name, arguments: args } : { name, arguments: args, _meta: meta },
  );
const initialize = (id: number) =>
  rpc(id, 'initialize', {
    protocolVersion: PROTOCOL,
    capabilities: {},
    clientInfo: { name: 'audit-e2e', version: '1' },
  });

/** Requests made to one gateway, with what their audit lines must say. */
class Ledger {
  readonly sent: Sent[] = [];
  readonly url: string;
  constructor(url: string) {
    this.url = url;
  }

  /** Makes one request, reads the whole answer, and writes down its expected audit line. */
  async send(
    init: { method?: 'GET' | 'POST' | 'DELETE'; headers?: Record<string, string>; body?: string },
    expect: Omit<Expected, 'http_method' | 'aborted'> & { bytesIn?: number },
  ): Promise<Answer> {
    const method = init.method ?? 'POST';
    const res = await fetch(this.url, {
      method,
      headers: { 'user-agent': UA, ...init.headers },
      ...(init.body === undefined ? {} : { body: init.body }),
    });
    const body = await res.text();
    const id = res.headers.get('x-request-id');
    assert.ok(id, 'every answer carries X-Request-Id');
    assert.equal(res.status, expect.status, `status of ${init.body ?? method}: ${body}`);
    this.sent.push({
      ...expect,
      http_method: method,
      aborted: false,
      id,
      bytesIn: expect.bytesIn ?? (init.body === undefined ? 0 : Buffer.byteLength(init.body)),
      bytesOut: Buffer.byteLength(body),
    });
    return { status: res.status, headers: res.headers, body, id };
  }

  /** For requests whose answer is read only in part (aborted or cut streams). */
  record(sent: Sent): void {
    this.sent.push(sent);
  }
}

function assertLine(line: AuditLine, exp: Sent, startedAt: number): void {
  const where = `audit line of ${exp.id} (${exp.http_method} ${exp.rpc_method ?? ''})`;
  for (const name of Object.keys(line)) assert.ok(FIELDS.has(name), `${where}: unexpected field ${name}`);
  for (const [name, value] of Object.entries(line)) assert.notEqual(value, null, `${where}: ${name} is null`);
  assert.equal(typeof line.time, 'string', where);
  assert.match(line.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, where);
  const time = Date.parse(line.time as string);
  assert.ok(time >= startedAt - 1000 && time <= Date.now() + 1000, `${where}: time ${line.time as string}`);
  assert.equal(line.request_id, exp.id, where);
  assert.equal(line.key, exp.key?.label, `${where}: key`);
  assert.equal(line.key_id, exp.key?.keyId, `${where}: key_id`);
  assert.equal(line.sub, undefined, where);
  assert.match(String(line.client_ip), /^(::ffff:)?127\.0\.0\.1$/, `${where}: client_ip`);
  assert.equal(line.http_method, exp.http_method, `${where}: http_method`);
  assert.equal(line.rpc_method, exp.rpc_method, `${where}: rpc_method`);
  assert.equal(line.rpc_id, exp.rpc_id, `${where}: rpc_id`);
  assert.equal(line.tool, exp.tool, `${where}: tool`);
  assert.equal(line.arguments, undefined, `${where}: arguments are off by default`);
  assert.deepEqual(line.calls, exp.calls, `${where}: calls`);
  if (!exp.outcomeCheckedElsewhere) {
    assert.equal(line.decision, exp.decision, `${where}: decision`);
    assert.equal(line.reason, exp.reason, `${where}: reason`);
    assert.equal(line.status, exp.status, `${where}: status`);
  }
  assert.equal(typeof line.latency_ms, 'number', `${where}: latency_ms`);
  assert.ok((line.latency_ms as number) >= 0, `${where}: latency_ms`);
  if (exp.upstream) {
    assert.equal(typeof line.upstream_ms, 'number', `${where}: upstream_ms`);
    assert.ok((line.upstream_ms as number) >= 0, `${where}: upstream_ms`);
    assert.ok(
      (line.upstream_ms as number) <= (line.latency_ms as number),
      `${where}: upstream_ms <= latency_ms`,
    );
  } else {
    assert.equal(line.upstream_ms, undefined, `${where}: upstream_ms`);
  }
  assert.equal(line.bytes_in, exp.bytesIn, `${where}: bytes_in`);
  if (exp.bytesOut !== undefined) assert.equal(line.bytes_out, exp.bytesOut, `${where}: bytes_out`);
  else
    assert.ok(
      typeof line.bytes_out === 'number' && line.bytes_out > 0,
      `${where}: bytes_out ${String(line.bytes_out)}`,
    );
  assert.equal(
    line.session,
    exp.session === undefined ? undefined : sessionTag(exp.session),
    `${where}: session`,
  );
  assert.equal(line.protocol_version, exp.protocolVersion, `${where}: protocol_version`);
  assert.equal(line.aborted, exp.aborted, `${where}: aborted`);
  assert.equal(line.user_agent, UA, `${where}: user_agent`);
}

/** Parses JSON lines; every line must be one JSON object. */
function parseLines(text: string, what: string): AuditLine[] {
  assert.ok(text === '' || text.endsWith('\n'), `${what} ends with a newline`);
  assert.doesNotMatch(text, /[\u0085\u2028\u2029]/, `${what}: a line break other readers split at`);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const value = JSON.parse(l) as unknown;
      assert.ok(
        value !== null && typeof value === 'object' && !Array.isArray(value),
        `${what}: not an object: ${l}`,
      );
      return value as AuditLine;
    });
}

/** Exactly one line per sent request, and no other line. */
function assertExactly(lines: AuditLine[], sent: readonly Sent[], startedAt: number, what: string): void {
  assert.equal(lines.length, sent.length, `${what}: ${lines.length} lines for ${sent.length} requests`);
  const byId = new Map<string, AuditLine>();
  for (const line of lines) {
    assert.equal(typeof line.request_id, 'string');
    assert.ok(!byId.has(line.request_id as string), `${what}: two lines for ${line.request_id as string}`);
    byId.set(line.request_id as string, line);
  }
  for (const exp of sent) {
    const line = byId.get(exp.id);
    assert.ok(line, `${what}: no line for ${exp.id} (${exp.http_method} ${exp.rpc_method ?? ''})`);
    assertLine(line, exp, startedAt);
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text: a tiny parser, and counters compared before/after.

type Samples = ReadonlyMap<string, number>;

function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort();
  return names.length === 0 ? name : `${name}{${names.map((n) => `${n}="${labels[n]}"`).join(',')}}`;
}

function parsePrometheus(text: string): Samples {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name as string] = (value as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const key = seriesKey(m[1] as string, labels);
    assert.ok(!out.has(key), `duplicate series ${key}`);
    out.set(key, Number(m[3]));
  }
  return out;
}

async function scrape(url: string): Promise<Samples> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await res.text());
}

/** Every series of `family` (a counter) moved by exactly `expected` (missing: 0). */
function assertDeltas(
  before: Samples,
  after: Samples,
  family: string,
  expected: ReadonlyMap<string, number>,
): void {
  const keys = new Set<string>();
  for (const samples of [before, after])
    for (const key of samples.keys()) if (key === family || key.startsWith(`${family}{`)) keys.add(key);
  for (const key of expected.keys()) keys.add(key);
  const moved: Record<string, number> = {};
  const want: Record<string, number> = {};
  for (const key of keys) {
    const delta = (after.get(key) ?? 0) - (before.get(key) ?? 0);
    if (delta !== 0) moved[key] = delta;
    const e = expected.get(key) ?? 0;
    if (e !== 0) want[key] = e;
  }
  assert.deepEqual(moved, want, `${family} moved by exactly the requests made`);
}

function count(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

/** What mcpgate_requests_total, mcpgate_tool_calls_total ... must have moved by for `sent`. */
function expectedCounters(sent: readonly Sent[], toolLabel: (name: string) => string) {
  const requests = new Map<string, number>();
  const durations = new Map<string, number>();
  const tools = new Map<string, number>();
  const rateLimited = new Map<string, number>();
  for (const s of sent) {
    count(
      requests,
      seriesKey('mcpgate_requests_total', { decision: s.decision, rpc_method: s.metricMethod }),
    );
    if (s.http_method !== 'GET')
      count(durations, seriesKey('mcpgate_request_duration_seconds_count', { decision: s.decision }));
    if (s.rpc_method === 'tools/call' && s.tool !== undefined)
      count(tools, seriesKey('mcpgate_tool_calls_total', { tool: toolLabel(s.tool), decision: s.decision }));
    for (const c of s.calls ?? [])
      if (c.tool !== undefined)
        count(
          tools,
          seriesKey('mcpgate_tool_calls_total', { tool: toolLabel(c.tool), decision: c.decision }),
        );
    if (s.decision === 'rate_limited')
      count(rateLimited, seriesKey('mcpgate_rate_limited_total', { key: s.key?.label ?? 'none' }));
  }
  return { requests, durations, tools, rateLimited };
}

function startLine(gw: ServeProcess): Record<string, unknown> {
  const line = gw
    .stderr()
    .split('\n')
    .find((l) => l.includes('mcpgate listening on'));
  assert.ok(line, 'the start-up line');
  return JSON.parse(line) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------

describe('audit file, metrics listener, SIGHUP and SIGTERM (real mcpgate serve, stateful SDK upstream)', () => {
  const alice = makeKey('alice', ['*']);
  const limited = makeKey('limited', ['echo']);
  const tiny = makeKey('tiny', ['echo'], { capacity: 2, refill_per_second: 0.001 });
  let upstream: SdkUpstream;
  let dir: string;
  let auditPath: string;
  let gw: ServeProcess;
  let ledger: Ledger;
  let metricsUrl: string;
  let metricsBefore: Samples;
  let startedAt: number;
  /** alice's session: the id the client sees. */
  let sid = '';
  /** How many of `ledger.sent` went to the first file (before SIGHUP). */
  let beforeRotation = 0;
  /** The line of the call cut at the end of the grace period. */
  let cutLine: AuditLine | undefined;

  const aliceHeaders = (more: Record<string, string> = {}) => ({
    'content-type': 'application/json',
    accept: ACCEPT_BOTH,
    authorization: `Bearer ${alice.secret}`,
    'mcp-protocol-version': PROTOCOL,
    'mcp-session-id': sid,
    ...more,
  });
  const aliceCall = (id: number | string, name: string, args: Record<string, unknown> = {}) => ({
    key: alice,
    rpc_method: 'tools/call',
    rpc_id: id,
    tool: name,
    decision: 'allow' as const,
    status: 200,
    upstream: true,
    session: sid,
    protocolVersion: PROTOCOL,
    metricMethod: 'tools/call',
    body: toolCall(id, name, args),
  });

  async function fileLines(path: string): Promise<AuditLine[]> {
    return parseLines(await readFile(path, 'utf8'), path);
  }

  before(async () => {
    startedAt = Date.now();
    upstream = await startSdkUpstream();
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-audit-'));
    auditPath = join(dir, 'audit.log');
    const metricsPort = await freePort();
    const config = {
      listen: '127.0.0.1:0',
      upstream: { url: upstream.url },
      shutdown: { grace: '1500ms' },
      rate_limit: { capacity: 1000, refill_per_second: 1000 },
      keys: [alice.config, limited.config, tiny.config],
      audit: { output: auditPath },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
    };
    const configPath = join(dir, 'mcpgate.yaml');
    await writeFile(configPath, JSON.stringify(config, null, 2));
    gw = await startServe(['--config', configPath]);
    ledger = new Ledger(gw.url);
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    assert.equal(startLine(gw).metrics, metricsUrl);
    metricsBefore = await scrape(metricsUrl);
  });

  after(async () => {
    await gw?.stop('SIGKILL');
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves metrics on metrics.listen only, and its scrapes are not audited', async () => {
    const main = new URL(gw.url);
    const res = await fetch(`${main.origin}/metrics`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
    assert.equal(metricsBefore.get('mcpgate_open_streams'), 0);
    assert.equal(metricsBefore.get('mcpgate_upstream_errors_total{kind="refused"}'), 0, 'zeros are exported');
  });

  it('records an allowed session: initialize, a notification, tools/list and tool calls', async () => {
    const init = await ledger.send(
      {
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT_BOTH,
          authorization: `Bearer ${alice.secret}`,
        },
        body: initialize(1),
      },
      // No Mcp-Protocol-Version header on initialize: the line takes the version the client offers
      // in its params. The session is the one issued.
      {
        key: alice,
        rpc_method: 'initialize',
        rpc_id: 1,
        protocolVersion: PROTOCOL,
        decision: 'allow',
        status: 200,
        upstream: true,
        metricMethod: 'initialize',
      },
    );
    sid = init.headers.get('mcp-session-id') ?? '';
    assert.ok(sid.includes('.'), 'a bound session id');
    // The session was issued by this response: patch it into the expectation.
    const first = ledger.sent.pop() as Sent;
    ledger.record({ ...first, session: sid });

    await ledger.send(
      {
        headers: aliceHeaders(),
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      },
      {
        key: alice,
        rpc_method: 'notifications/initialized',
        decision: 'allow',
        status: 202,
        upstream: true,
        session: sid,
        protocolVersion: PROTOCOL,
        metricMethod: 'notifications/initialized',
      },
    );
    const list = await ledger.send(
      { headers: aliceHeaders(), body: rpc(2, 'tools/list') },
      {
        key: alice,
        rpc_method: 'tools/list',
        rpc_id: 2,
        decision: 'allow',
        status: 200,
        upstream: true,
        session: sid,
        protocolVersion: PROTOCOL,
        metricMethod: 'tools/list',
      },
    );
    assert.match(list.body, /secret_admin/);

    const { body, ...echo } = aliceCall(3, 'echo', { message: 'hello audit' });
    assert.match((await ledger.send({ headers: aliceHeaders(), body }, echo)).body, /Echo: hello audit/);
    // A tool the key's wildcard allows but nobody lists: the upstream answers, metrics say `other`.
    const { body: body2, ...unknown } = aliceCall(4, 'no_such_tool');
    assert.match((await ledger.send({ headers: aliceHeaders(), body: body2 }, unknown)).body, /no_such_tool/);
  });

  it('records a denied call with its tool and reason; the upstream never sees it', async () => {
    const seen = upstream.toolCalls().length;
    const answer = await ledger.send(
      {
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT_BOTH,
          'x-api-key': limited.secret,
          'mcp-protocol-version': PROTOCOL,
        },
        body: toolCall(5, 'secret_admin'),
      },
      {
        key: limited,
        rpc_method: 'tools/call',
        rpc_id: 5,
        tool: 'secret_admin',
        decision: 'deny',
        reason: 'ERR_TOOL_DENIED',
        status: 200,
        upstream: false,
        protocolVersion: PROTOCOL,
        metricMethod: 'tools/call',
      },
    );
    assert.equal((JSON.parse(answer.body) as { error: { code: number } }).error.code, -32602);
    assert.equal(upstream.toolCalls().length, seen);
  });

  it('writes a tool name holding U+2028, U+2029 and U+0085 on one line to any reader', async () => {
    // Python's str.splitlines and Java's \R end a line at each (failed before: JSON.stringify leaves
    // them as they are, so such a reader saw three lines, one of them a forged record).
    const name = 'secret\u2028{"decision":"allow"}\u0085x\u2029';
    const answer = await ledger.send(
      {
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT_BOTH,
          'x-api-key': limited.secret,
          'mcp-protocol-version': PROTOCOL,
        },
        body: toolCall(55, name),
      },
      {
        key: limited,
        rpc_method: 'tools/call',
        rpc_id: 55,
        tool: name,
        decision: 'deny',
        reason: 'ERR_TOOL_DENIED',
        status: 200,
        upstream: false,
        protocolVersion: PROTOCOL,
        metricMethod: 'tools/call',
      },
    );
    assert.equal((JSON.parse(answer.body) as { error: { code: number } }).error.code, -32602);
    const text = await waitFor(
      async () => {
        const t = await readFile(auditPath, 'utf8');
        return t.includes('"rpc_id":55,') ? t : undefined;
      },
      5000,
      'the line of rpc_id 55',
    );
    // Every request's line is one line to Python: as many as the file's newlines.
    assert.equal(
      // eslint-disable-next-line no-control-regex -- the control characters Python's splitlines ends lines at
      text.slice(0, -1).split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/).length,
      text.split('\n').length - 1,
    );
  });

  it('records a rate-limited call (capacity 2)', async () => {
    const base = {
      'content-type': 'application/json',
      accept: ACCEPT_BOTH,
      authorization: `Bearer ${tiny.secret}`,
    };
    const init = await ledger.send(
      { headers: base, body: initialize(6) },
      {
        key: tiny,
        rpc_method: 'initialize',
        rpc_id: 6,
        protocolVersion: PROTOCOL,
        decision: 'allow',
        status: 200,
        upstream: true,
        metricMethod: 'initialize',
      },
    );
    const tinySid = init.headers.get('mcp-session-id') ?? '';
    assert.ok(tinySid);
    ledger.record({ ...(ledger.sent.pop() as Sent), session: tinySid });
    const headers = { ...base, 'mcp-session-id': tinySid, 'mcp-protocol-version': PROTOCOL };
    const call = (id: number) => ({
      key: tiny,
      rpc_method: 'tools/call',
      rpc_id: id,
      tool: 'echo',
      session: tinySid,
      protocolVersion: PROTOCOL,
      metricMethod: 'tools/call',
    });
    await ledger.send(
      { headers, body: toolCall(7, 'echo', { message: 'tiny' }) },
      { ...call(7), decision: 'allow', status: 200, upstream: true },
    );
    const refused = await ledger.send(
      { headers, body: toolCall(8, 'echo', { message: 'tiny again' }) },
      { ...call(8), decision: 'rate_limited', reason: 'ERR_RATE_LIMITED', status: 429, upstream: false },
    );
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
  });

  it('records unauthenticated requests (no key, a wrong key) and invalid ones (bad JSON, 415)', async () => {
    const json = { 'content-type': 'application/json', accept: ACCEPT_BOTH };
    const unauthenticated = (reason: string) => ({
      decision: 'unauthenticated' as const,
      reason,
      status: 401,
      upstream: false,
      // The body of an unauthenticated request is only peeked at for its id (up to 16 KiB): it is
      // not judged, but the bytes read are counted.
      metricMethod: 'none',
    });
    await ledger.send({ headers: json, body: toolCall(9, 'echo') }, unauthenticated('ERR_AUTH_MISSING'));
    const wrong = mintKey(randomBytes(32));
    await ledger.send(
      { headers: { ...json, authorization: `Bearer ${wrong}` }, body: toolCall(10, 'echo') },
      unauthenticated('ERR_AUTH_UNKNOWN_KEY'),
    );
    const bad = await ledger.send(
      {
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT_BOTH,
          authorization: `Bearer ${alice.secret}`,
          'mcp-protocol-version': PROTOCOL,
        },
        body: '{"jsonrpc":"2.0","id":11,"method":',
      },
      {
        key: alice,
        decision: 'invalid',
        reason: 'ERR_PARSE',
        status: 400,
        upstream: false,
        protocolVersion: PROTOCOL,
        metricMethod: 'none',
      },
    );
    assert.equal((JSON.parse(bad.body) as { error: { code: number } }).error.code, -32700);
    await ledger.send(
      {
        headers: {
          accept: ACCEPT_BOTH,
          authorization: `Bearer ${alice.secret}`,
          'content-type': 'text/plain',
        },
        body: rpc(12, 'ping'),
      },
      {
        key: alice,
        decision: 'invalid',
        reason: 'ERR_UNSUPPORTED_MEDIA_TYPE',
        status: 415,
        upstream: false,
        // Refused before the body is read, which is then peeked at for its id (up to 16 KiB), as an
        // unauthenticated one's: the bytes read are counted.
        metricMethod: 'none',
      },
    );
  });

  it('records a batch as one line with a `calls` array', async () => {
    const body = JSON.stringify([
      {
        jsonrpc: '2.0',
        id: 13,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'b1' } },
      },
      { jsonrpc: '2.0', id: 14, method: 'ping' },
    ]);
    await ledger.send(
      { headers: aliceHeaders(), body },
      {
        key: alice,
        calls: [
          { rpc_method: 'tools/call', rpc_id: 13, tool: 'echo', decision: 'allow' },
          { rpc_method: 'ping', rpc_id: 14, decision: 'allow' },
        ],
        decision: 'allow',
        status: 200,
        upstream: true,
        session: sid,
        protocolVersion: PROTOCOL,
        metricMethod: 'batch',
      },
    );
  });

  it('keeps a sane X-Request-Id and replaces an insane one', async () => {
    const { body, ...echo } = aliceCall(15, 'echo', { message: 'ids' });
    const kept = await ledger.send({ headers: aliceHeaders({ 'x-request-id': 'my-id-123' }), body }, echo);
    assert.equal(kept.id, 'my-id-123');
    for (const insane of ['has spaces in it', 'x'.repeat(300), 'a"b']) {
      const { body: b, ...e } = aliceCall(16, 'echo', { message: 'ids' });
      const replaced = await ledger.send({ headers: aliceHeaders({ 'x-request-id': insane }), body: b }, e);
      assert.match(replaced.id, UUID, `${insane.slice(0, 20)} is replaced`);
    }
  });

  /** Starts a `progress` call and reads until its first progress event has arrived. */
  async function startProgress(id: number, steps: number) {
    const body = toolCall(id, 'progress', { steps, delayMs: 100 }, { progressToken: `p-${id}` });
    const controller = new AbortController();
    const res = await fetch(ledger.url, {
      method: 'POST',
      headers: { 'user-agent': UA, ...aliceHeaders() },
      body,
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let seen = '';
    while (!seen.includes('notifications/progress')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended before its first progress event');
      seen += Buffer.from(value).toString();
    }
    const sent: Sent = {
      ...aliceCall(id, 'progress'),
      http_method: 'POST',
      aborted: true,
      id: res.headers.get('x-request-id') ?? '',
      bytesIn: Buffer.byteLength(body),
      bytesOut: undefined,
    };
    /** Resolves when the rest of the stream has arrived or the stream failed. */
    const rest = (async () => {
      try {
        for (;;) if ((await reader.read()).done) return 'ended';
      } catch {
        return 'cut';
      }
    })();
    return { sent, controller, rest };
  }

  it('records a client that disconnects mid-stream as aborted', async () => {
    const { sent, controller, rest } = await startProgress(17, 20);
    controller.abort();
    assert.equal(await rest, 'cut');
    ledger.record(sent);
    // The gateway passed the disconnect on: the upstream's request was closed early too.
    await waitFor(
      () => upstream.received.find((r) => r.body.includes('"p-17"') && r.closedEarly),
      5000,
      'the upstream request to be aborted',
    );
  });

  it('counts an open GET stream in mcpgate_open_streams, and records it when it ends', async () => {
    const controller = new AbortController();
    const res = await fetch(ledger.url, {
      headers: { 'user-agent': UA, ...aliceHeaders({ accept: 'text/event-stream' }) },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const id = res.headers.get('x-request-id') ?? '';
    assert.equal((await scrape(metricsUrl)).get('mcpgate_open_streams'), 1);
    controller.abort();
    await res.body?.cancel().catch(() => {});
    await waitFor(
      async () => (await scrape(metricsUrl)).get('mcpgate_open_streams') === 0 || undefined,
      5000,
      'the stream to close',
    );
    ledger.record({
      key: alice,
      http_method: 'GET',
      decision: 'allow',
      status: 200,
      upstream: true,
      session: sid,
      protocolVersion: PROTOCOL,
      aborted: true,
      metricMethod: 'none',
      id,
      bytesIn: 0,
      bytesOut: 0,
    });
  });

  it('moved every counter by exactly the requests made', async () => {
    // Lines and metrics are both written when a response closes: once every line is in the file,
    // every request has been counted.
    await waitFor(
      async () => ((await fileLines(auditPath)).length >= ledger.sent.length ? true : undefined),
      5000,
      'all lines',
    );
    const metricsAfter = await scrape(metricsUrl);
    // Only exact names in the allowlists are labels (echo); the names the upstream lists are never
    // learned, so progress, no_such_tool and secret_admin are all `other`.
    const configured = new Set(['echo']);
    const expected = expectedCounters(ledger.sent, (name) => (configured.has(name) ? name : 'other'));
    assert.equal(expected.tools.get('mcpgate_tool_calls_total{decision="allow",tool="other"}'), 2);
    assert.equal(expected.tools.get('mcpgate_tool_calls_total{decision="deny",tool="other"}'), 2);
    assertDeltas(metricsBefore, metricsAfter, 'mcpgate_requests_total', expected.requests);
    assertDeltas(metricsBefore, metricsAfter, 'mcpgate_tool_calls_total', expected.tools);
    assertDeltas(metricsBefore, metricsAfter, 'mcpgate_rate_limited_total', expected.rateLimited);
    assert.deepEqual([...expected.rateLimited], [['mcpgate_rate_limited_total{key="tiny"}', 1]]);
    assertDeltas(metricsBefore, metricsAfter, 'mcpgate_request_duration_seconds_count', expected.durations);
    // A client that left is not an upstream failure.
    assertDeltas(metricsBefore, metricsAfter, 'mcpgate_upstream_errors_total', new Map());
    assert.equal(metricsAfter.get('mcpgate_open_streams'), 0);
  });

  it('reopens the file on SIGHUP: later lines go to a new file at the same path', async () => {
    await waitFor(
      async () => ((await fileLines(auditPath)).length === ledger.sent.length ? true : undefined),
      5000,
      'all lines',
    );
    beforeRotation = ledger.sent.length;
    await rename(auditPath, `${auditPath}.1`);
    const reopened = gw.stderr().split('audit file reopened').length;
    gw.child.kill('SIGHUP');
    await waitFor(
      () => gw.stderr().split('audit file reopened').length > reopened || undefined,
      5000,
      'the reopen',
    );
    const { body, ...echo } = aliceCall(18, 'echo', { message: 'after rotation' });
    await ledger.send({ headers: aliceHeaders(), body }, echo);
    const fresh = await waitFor(
      async () => {
        const lines = await fileLines(auditPath).catch(() => []);
        return lines.length > 0 ? lines : undefined;
      },
      5000,
      'a line in the new file',
    );
    assert.equal(fresh[0]?.request_id, ledger.sent.at(-1)?.id);
    assert.equal(gw.child.exitCode, null, 'SIGHUP does not stop the gateway');
  });

  it('writes the lines of what is open at SIGTERM; after exit the files hold exactly one line per request', async () => {
    // Open when SIGTERM arrives: a GET stream (ended by the gateway at once), a slow call (finishes
    // within the grace period) and a long progress stream (ended when the grace period ends, with
    // the error its request is owed).
    const stream = await fetch(ledger.url, {
      headers: { 'user-agent': UA, ...aliceHeaders({ accept: 'text/event-stream' }) },
    });
    assert.equal(stream.status, 200);
    const streamId = stream.headers.get('x-request-id') ?? '';
    const streamText = stream.text();
    const long = await startProgress(19, 25);
    const { body, ...slow } = aliceCall(20, 'slow', { ms: 300 });
    const slowAnswer = fetch(ledger.url, {
      method: 'POST',
      headers: { 'user-agent': UA, ...aliceHeaders() },
      body,
    });
    await waitFor(
      () => upstream.received.find((r) => forwards(r.body, 20)),
      5000,
      'the slow call to reach the upstream',
    );
    gw.child.kill('SIGTERM');
    const res = await slowAnswer;
    assert.equal(res.status, 200);
    const slowText = await res.text();
    assert.match(slowText, /slow done/);
    const streamed = await streamText; // the gateway ends the GET stream cleanly at shutdown
    // (failed before: cut, with no answer for its request.)
    assert.equal(await long.rest, 'ended');
    assert.equal(await gw.exited(), 0);
    assert.match(gw.stderr(), /"forced":1/);
    ledger.record({ ...long.sent, aborted: false, outcomeCheckedElsewhere: true });
    ledger.record({
      ...slow,
      http_method: 'POST',
      aborted: false,
      id: res.headers.get('x-request-id') ?? '',
      bytesIn: Buffer.byteLength(body),
      bytesOut: Buffer.byteLength(slowText),
    });
    ledger.record({
      key: alice,
      http_method: 'GET',
      decision: 'allow',
      status: 200,
      upstream: true,
      session: sid,
      protocolVersion: PROTOCOL,
      aborted: false,
      metricMethod: 'none',
      id: streamId,
      bytesIn: 0,
      bytesOut: Buffer.byteLength(streamed),
    });
    assert.doesNotMatch(gw.stderr(), /audit write failed|audit line dropped/);

    const rotated = await fileLines(`${auditPath}.1`);
    const current = await fileLines(auditPath);
    assertExactly(rotated, ledger.sent.slice(0, beforeRotation), startedAt, 'the rotated file');
    assertExactly(current, ledger.sent.slice(beforeRotation), startedAt, 'the new file');
    assert.equal(rotated.length + current.length, 25, 'the 25 requests this test made');
    assert.equal(gw.stdout(), '', 'nothing on stdout when auditing to a file');
    // The operational log (stderr) is JSON lines, and none of them is an audit line.
    for (const line of parseLines(gw.stderr(), 'stderr')) {
      assert.equal(typeof line.level, 'string');
      assert.equal(line.request_id, undefined);
    }
    cutLine = current.find((l) => l.request_id === long.sent.id);
  });

  it('hole: failed before: records a call whose stream the grace period ended as refused by the shutdown (not allowed with no answer), not as an upstream failure', () => {
    assert.ok(cutLine, 'the line of the cut call');
    assert.equal(cutLine.aborted, false, 'the stream was ended, with the error its request was owed');
    assert.equal(cutLine.decision, 'deny');
    assert.equal(cutLine.reason, 'ERR_SHUTTING_DOWN');
    assert.equal(cutLine.status, 200, 'the status the client received');
  });
});

describe('audit to stdout, metrics on the main listener, a dead upstream (real mcpgate serve)', () => {
  const alice = makeKey('alice', ['echo']);
  let dir: string;
  let gw: ServeProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-audit-stdout-'));
    const dead = await freePort(); // nothing listens there
    const configPath = join(dir, 'mcpgate.yaml');
    await writeFile(
      configPath,
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: `http://127.0.0.1:${dead}/mcp` },
        keys: [alice.config],
      }),
    );
    gw = await startServe(['--config', configPath]);
  });
  after(async () => {
    await gw?.stop('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('records 502s as upstream_error, counts them by kind, and writes exactly one stdout line per request', async () => {
    const startedAt = Date.now();
    const ledger = new Ledger(gw.url);
    const metricsUrl = `${new URL(gw.url).origin}/metrics`;
    assert.equal(startLine(gw).metrics, metricsUrl);
    const before = await scrape(metricsUrl);
    const headers = {
      'content-type': 'application/json',
      accept: ACCEPT_BOTH,
      authorization: `Bearer ${alice.secret}`,
      'mcp-protocol-version': PROTOCOL,
    };
    const failed = await ledger.send(
      { headers, body: toolCall(1, 'echo', { message: 'nobody home' }) },
      {
        key: alice,
        rpc_method: 'tools/call',
        rpc_id: 1,
        tool: 'echo',
        decision: 'upstream_error',
        reason: 'ERR_UPSTREAM_UNAVAILABLE',
        status: 502,
        upstream: false,
        protocolVersion: PROTOCOL,
        metricMethod: 'tools/call',
      },
    );
    assert.deepEqual(JSON.parse(failed.body), {
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32002, message: 'upstream unavailable' },
    });
    await ledger.send(
      {
        method: 'GET',
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${alice.secret}`,
          'x-request-id': 'my-id-123',
        },
      },
      {
        key: alice,
        decision: 'upstream_error',
        reason: 'ERR_UPSTREAM_UNAVAILABLE',
        status: 502,
        upstream: false,
        metricMethod: 'none',
      },
    );
    assert.equal(ledger.sent.at(-1)?.id, 'my-id-123');
    await ledger.send(
      { headers: { 'content-type': 'application/json', accept: ACCEPT_BOTH }, body: toolCall(2, 'echo') },
      {
        decision: 'unauthenticated',
        reason: 'ERR_AUTH_MISSING',
        status: 401,
        upstream: false,
        metricMethod: 'none',
      },
    );

    await waitFor(
      () => (parseLines(gw.stdout(), 'stdout').length >= 3 ? true : undefined),
      5000,
      'three lines on stdout',
    );
    const after = await scrape(metricsUrl);
    const expected = expectedCounters(ledger.sent, (name) => (name === 'echo' ? name : 'other'));
    assertDeltas(before, after, 'mcpgate_requests_total', expected.requests);
    assertDeltas(before, after, 'mcpgate_tool_calls_total', expected.tools);
    assertDeltas(
      before,
      after,
      'mcpgate_upstream_errors_total',
      new Map([['mcpgate_upstream_errors_total{kind="refused"}', 2]]),
    );
    assertDeltas(before, after, 'mcpgate_rate_limited_total', new Map());
    assert.equal(after.get('mcpgate_open_streams'), 0, 'the failed GET stream is not left counted');

    assert.equal(await gw.stop('SIGTERM'), 0);
    assertExactly(parseLines(gw.stdout(), 'stdout'), ledger.sent, startedAt, 'stdout');
    for (const line of parseLines(gw.stderr(), 'stderr'))
      assert.equal(line.request_id, undefined, 'no audit line on stderr');
  });
});
