/**
 * What the observer costs per request, in process: the audit record (build + JSON line), the write
 * to a file, and the metrics, for the pipeline scenario's request (an API key, one allowed
 * tools/call), interleaved in one run. Prints time per request (median of rounds) and bytes
 * allocated per request (heap growth over a batch too small to trigger a scavenge).
 *
 *   node --max-semi-space-size=64 --min-semi-space-size=64 bench/observer-micro.ts [--rounds 7] [--per-turn 8]
 *     [--against /path/to/other/checkout]
 *
 * With `--against`, that checkout's audit log and observer (its src/audit/ and src/metrics/) run
 * beside this one's, writing the same requests to files of their own: "audit line + write" and
 * "observer.finish" for both, as the median wall time per request over batches taking turns in a
 * rotating order (steadier on a shared machine than the rounds above), and the ratio; and "audit
 * line, encoded": the same audit log over a writer that only encodes each line into its buffer
 * (no event-loop turns, no file), the line's own cost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { getHeapStatistics } from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createAuditLog } from '../src/audit/audit.ts';
import { buildAuditRecord } from '../src/audit/record.ts';
import { createMetrics } from '../src/metrics/metrics.ts';
import { createObserver } from '../src/audit/observer.ts';
import { createContext } from '../src/pipeline/context.ts';
import type { RequestContext } from '../src/pipeline/context.ts';
import { requestIdFor } from '../src/pipeline/request-id.ts';
import { ALLOW_ALL } from '../src/policy/grants.ts';
import { KNOWN_METHODS } from '../src/policy/methods.ts';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as AuditModule from '../src/audit/audit.ts';
import type * as ObserverModule from '../src/audit/observer.ts';
import type * as MetricsModule from '../src/metrics/metrics.ts';
import type * as LineBufferModule from '../src/audit/line-buffer.ts';
import type { LineSource } from '../src/audit/line-buffer.ts';
import type { AuditWriter } from '../src/audit/writer.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    batch: { type: 'string', default: '2000' },
    'per-turn': { type: 'string', default: '8' },
    against: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const batch = Number(values.batch);
/** Requests finishing in one event-loop turn (the audit writer hands a turn's lines over at once). */
const perTurn = Number(values['per-turn']);
const turn = () => new Promise((resolve) => setImmediate(resolve));

let gcs = 0;
new PerformanceObserver((list) => (gcs += list.getEntries().length)).observe({ entryTypes: ['gc'] });

const req = {
  method: 'POST',
  headers: {
    host: '127.0.0.1:8080',
    'user-agent': 'wrk',
    authorization: 'Bearer mcpg_live_x',
    'content-type': 'application/json',
    'mcp-protocol-version': '2025-06-18',
  },
  socket: { remoteAddress: '127.0.0.1' },
} as unknown as IncomingMessage;
const res = {} as ServerResponse;
let mono = 1000;
function context(): RequestContext {
  const ctx = createContext(requestIdFor(req), req, res, Date.now(), mono);
  ctx.principal = {
    kind: 'key',
    name: 'bench',
    keyId: 'k1a2b3c4',
    bindingId: 'hash:k1a2b3c4',
    grants: ALLOW_ALL,
    limits: undefined,
  };
  ctx.calls.push({ rpc_method: 'tools/call', rpc_id: 7, tool: 'tool_000_search_issues', decision: 'allow' });
  ctx.status = 200;
  ctx.upstreamMs = 0.8;
  ctx.bytesIn = 110;
  ctx.bytesOut = 98;
  ctx.session = 's-3f2a9c1b';
  return ctx;
}

const dir = mkdtempSync(join(tmpdir(), 'observer-micro-'));
const audit = createAuditLog({ output: join(dir, 'audit.log'), log_arguments: false, redact: [] });
await audit.ready();
const metrics = createMetrics({ knownMethods: KNOWN_METHODS, knownTools: ['*'], keyLabels: ['bench'] });
const clock = { now: () => Date.now(), mono: () => (mono += 1.234) };
const observer = createObserver({ clock, audit, metrics, onError: (err) => console.error(err) });
const ctxs = Array.from({ length: batch }, context);

const cases: Record<string, (ctx: RequestContext) => void> = {
  'context + request id': () => void context(),
  'audit record (object)': (ctx) => void buildAuditRecord(ctx, Date.now(), mono),
  'audit line (record + JSON)': (ctx) => void JSON.stringify(buildAuditRecord(ctx, Date.now(), mono)),
  'audit record + write': (ctx) => audit.record(ctx, Date.now(), mono),
  metrics: (ctx) => metrics.observe(ctx, mono),
  'observer.finish (audit + metrics)': (ctx) => observer.finish(ctx),
};
const results = new Map<string, { ns: number[]; bytes: number[] }>();
for (const name in cases) results.set(name, { ns: [], bytes: [] });

for (let round = 0; round < rounds; round++) {
  for (const [name, fn] of Object.entries(cases)) {
    await audit.flush();
    await new Promise((r) => setImmediate(r));
    const gcBefore = gcs;
    const heapBefore = getHeapStatistics().used_heap_size;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) {
      fn(ctxs[i]!);
      if (i % perTurn === perTurn - 1) await turn();
    }
    const t1 = process.hrtime.bigint();
    const heapAfter = getHeapStatistics().used_heap_size;
    const r = results.get(name)!;
    r.ns.push(Number(t1 - t0) / batch);
    if (gcs === gcBefore && round > 0) r.bytes.push((heapAfter - heapBefore) / batch);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
};
console.log(
  `${rounds} rounds × ${batch}, ${perTurn} per event-loop turn, load average ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`,
);
for (const [name, r] of results) {
  console.log(
    `${name.padEnd(36)} ${(median(r.ns) / 1000).toFixed(2).padStart(6)} µs  ${Math.round(median(r.bytes)).toString().padStart(6)} B/req  (${r.bytes.length} rounds without GC)`,
  );
}

/** One checkout's audit log (to a file of its own) and observer. */
async function subject(root: string, name: string) {
  const at = (file: string) => pathToFileURL(resolve(root, 'src', file)).href;
  const auditMod = (await import(at('audit/audit.ts'))) as typeof AuditModule;
  const observerMod = (await import(at('audit/observer.ts'))) as typeof ObserverModule;
  const metricsMod = (await import(at('metrics/metrics.ts'))) as typeof MetricsModule;
  const lineMod = (await import(at('audit/line-buffer.ts'))) as typeof LineBufferModule;
  // The same audit log over a writer that only encodes the lines, as the real one does (taking
  // them every perTurn lines): the line's cost without the event loop and the file.
  const lines = new lineMod.LineBuffer();
  let count = 0;
  const taken = () => {
    if (++count % perTurn === 0) lines.take();
  };
  const encoder = {
    file: undefined,
    write(record: object) {
      lines.push(JSON.stringify(record));
      taken();
    },
    append(source: LineSource) {
      lines.append(source);
      taken();
    },
    ready: async () => {},
    flush: async () => {},
    flushSync() {},
    reopen() {},
    close: async () => {},
  };
  const encodeOnly = auditMod.createAuditLog(
    { output: 'stdout', log_arguments: false, redact: [] },
    { writer: encoder as AuditWriter },
  );
  const log = auditMod.createAuditLog({ output: join(dir, `${name}.log`), log_arguments: false, redact: [] });
  await log.ready();
  const m = metricsMod.createMetrics({
    knownMethods: KNOWN_METHODS,
    knownTools: ['*'],
    keyLabels: ['bench'],
  });
  const obs = observerMod.createObserver({
    clock,
    audit: log,
    metrics: m,
    onError: (err) => console.error(err),
  });
  return {
    name,
    log,
    encode: (ctx: RequestContext) => encodeOnly.record(ctx, Date.now(), mono),
    line: (ctx: RequestContext) => log.record(ctx, Date.now(), mono),
    finish: (ctx: RequestContext) => obs.finish(ctx),
  };
}

/**
 * Per request, for each op: the median wall ns over batches of 8 turns (perTurn requests each), the
 * ops' batches taking turns in a rotating order (a preemption lands in a few batches, which the
 * median leaves out), and the process's CPU ns (user + system, the audit file's writes on libuv's
 * threadpool included) summed over the same batches. Each op first runs 20,000 requests unmeasured
 * (the JIT's warm-up).
 */
async function interleaved(
  ops: ((ctx: RequestContext) => void)[],
  flush: () => Promise<void>,
  turns: boolean,
): Promise<{ wall: number; cpu: number }[]> {
  const walls = ops.map(() => [] as number[]);
  const cpus = ops.map(() => 0);
  const per = perTurn * 8;
  const batches = Math.max(200, Math.round((batch * rounds * 4) / per / ops.length));
  let next = 0;
  const run = async (op: (ctx: RequestContext) => void) => {
    for (let j = 0; j < per; j++) {
      op(ctxs[next]!);
      next = (next + 1) % ctxs.length;
      if (turns && j % perTurn === perTurn - 1) await turn();
    }
  };
  for (const op of ops) for (let i = 0; i < 20_000; i += per) await run(op);
  for (let b = 0; b < batches; b++) {
    if (b % 16 === 0) await flush();
    for (let k = 0; k < ops.length; k++) {
      const i = (b + k) % ops.length;
      const cpu = process.cpuUsage();
      const start = process.hrtime.bigint();
      await run(ops[i]!);
      walls[i]!.push(Number(process.hrtime.bigint() - start) / per);
      const used = process.cpuUsage(cpu);
      cpus[i]! += used.user + used.system;
    }
  }
  return ops.map((_, i) => ({ wall: median(walls[i]!), cpu: (cpus[i]! * 1000) / (batches * per) }));
}

type Timing = { wall: number; cpu: number };
const us = (ns: number) => `${(ns / 1000).toFixed(3)} µs`;
if (values.against !== undefined) {
  const mine = await subject(resolve(import.meta.dirname, '..'), 'this');
  const theirs = await subject(values.against, 'against');
  const flush = async () => {
    await Promise.all([mine.log.flush(), theirs.log.flush()]);
  };
  const labels = { encode: 'audit line, encoded', line: 'audit line + write', finish: 'observer.finish' };
  for (const part of ['encode', 'line', 'finish'] as const) {
    const [a, b] = (await interleaved([mine[part], theirs[part]], flush, part !== 'encode')) as [
      Timing,
      Timing,
    ];
    const label = labels[part];
    console.log(
      `${label.padEnd(20)} this ${us(a.wall)} wall, ${us(a.cpu)} CPU; against ${us(b.wall)}, ${us(b.cpu)}; ` +
        `this/against wall ${(a.wall / b.wall).toFixed(3)}, CPU ${(a.cpu / b.cpu).toFixed(3)}`,
    );
  }
  await Promise.all([mine.log.close(), theirs.log.close()]);
}
await audit.close();
rmSync(dir, { recursive: true, force: true });
