/**
 * What the observer costs per request, in process: the audit record (build + JSON line), the write
 * to a file, and the metrics, for the pipeline scenario's request (an API key, one allowed
 * tools/call), interleaved in one run. Prints time per request (median of rounds) and bytes
 * allocated per request (heap growth over a batch too small to trigger a scavenge).
 *
 *   node --max-semi-space-size=64 --min-semi-space-size=64 bench/observer-micro.ts [--rounds 7] [--per-turn 8]
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

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    batch: { type: 'string', default: '2000' },
    'per-turn': { type: 'string', default: '8' },
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
await audit.close();
rmSync(dir, { recursive: true, force: true });
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
