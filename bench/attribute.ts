/**
 * What each pipeline step costs per request, in microseconds of CPU: the table issue 14 asks for.
 *
 *   node bench/attribute.ts [--config pipeline|passthrough] [--gw NAME=PATH ...] [--seconds 8]
 *     [--functions N] [--keep] [--scale split|total]
 *
 * For each gateway build (default: this checkout) two processes run the same configuration behind
 * the same origin: one under `--cpu-prof` (for shares) and one plain (for CPU per request from
 * /proc, since sampling itself costs CPU). Both take the same wrk load at 32 connections, in
 * alternating rounds. Every profile sample is charged to one step:
 *
 * - socket syscalls (write, read), garbage collection, and V8/native time, whoever caused them;
 * - otherwise the innermost mcpgate source file on the stack (so `crypto` called by the request
 *   tagger is tagging, Node's header code called by the relay is the relay), mapped to its step by
 *   STEPS below;
 * - otherwise the HTTP hops: Node's HTTP server and undici with no mcpgate code on the stack.
 *
 * The floor proxy is profiled the same way (all of it is hops, syscalls, GC and V8), so each row
 * can be read against it. Startup (module loading, config) is left out of the shares. Several
 * builds side by side (`--gw before=/old/bin/mcpgate.js --gw after=...`) give a before/after table
 * from one run. `--functions N` lists after the table each build's N costliest mcpgate functions
 * (the innermost mcpgate frame, with what it calls into Node), which is what to read when one
 * step's row is large. `--keep` leaves the profiles (and their directory, printed at the end) for a
 * look of one's own.
 *
 * How the shares become µs (`--scale`). `--cpu-prof` samples the main thread by wall clock: a
 * sample taken while the thread waits to run again is charged to the call it was in, and on this
 * 2-core machine the thread is mostly preempted inside a socket write, which wakes the client or
 * the origin (2026-12-03: the syscall row came to twice the process's whole system time). So by
 * default (`split`) the syscall row is the plain process's system time per request, and every
 * other row (and function) is its share of the samples outside syscalls times the user time per
 * request (the threads other than the main one, GC helpers and libuv's pool, are spread over the
 * rows in proportion). `total` is the method of the tables before 2026-12-03: each row's share of
 * all busy samples times user + system, which understates the JavaScript rows by the preempted
 * time.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGenerator } from './load.ts';
import { CALL, sessionAt } from './measure.ts';
import type { Target } from './measure.ts';
import { auditFileFor, buildConfig } from './build-config.ts';
import {
  cpuTimes,
  killAll,
  startFloorProxy,
  startGateway,
  startOrigin,
  steadyLoadOnly,
} from './processes.ts';

steadyLoadOnly();
const { values } = parseArgs({
  options: {
    gw: { type: 'string', multiple: true, default: [] },
    config: { type: 'string', default: 'pipeline' },
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '3' },
    interval: { type: 'string', default: '100' },
    functions: { type: 'string', default: '0' },
    keep: { type: 'boolean', default: false },
    scale: { type: 'string', default: 'split' },
  },
});
if (values.gw.length === 0)
  values.gw.push(`mcpgate=${new URL('../bin/mcpgate.js', import.meta.url).pathname}`);

/** Source file (under src/) → step. The first prefix that matches wins. */
const STEPS: readonly (readonly [string, string])[] = [
  ['pipeline/request-id', 'request id'],
  ['pipeline/session', 'session verify'],
  ['auth/session-binding', 'session verify'],
  ['pipeline/authenticate', 'auth lookup'],
  ['auth/', 'auth lookup'],
  ['jsonrpc/', 'parse (strict, lossless)'],
  ['pipeline/inspect', 'judge'],
  ['policy/', 'judge'],
  ['integrity/', 'tag request, match response'],
  ['pipeline/rate-limit', 'rate limit'],
  ['pipeline/admission', 'rate limit'],
  ['ratelimit/', 'rate limit'],
  ['proxy/request-headers', 'request headers'],
  ['proxy/header-names', 'request headers'],
  ['proxy/response-headers', 'response headers'],
  ['server/cors', 'response headers'],
  ['proxy/', 'relay'],
  ['audit/record', 'audit record'],
  ['audit/arguments', 'audit record'],
  ['audit/outcome', 'audit record'],
  ['audit/', 'audit write'],
  ['metrics/', 'metrics'],
  ['pipeline/', 'handler (site, envelope, body read, context)'],
  ['server/', 'handler (site, envelope, body read, context)'],
  ['pinning/', 'pinning'],
  ['cli/', 'startup'],
  ['config/', 'startup'],
  ['log/', 'operational log'],
];
const HOPS = 'HTTP hops (no mcpgate code on the stack)';
const ORDER = [
  HOPS,
  'socket syscalls (write, read)',
  'garbage collection',
  'V8 and native (program)',
  ...new Set(STEPS.map(([, step]) => step)),
  'other',
];

const SYSCALLS = new Set([
  'writev',
  'writeString',
  'writeBuffer',
  'writeUtf8String',
  'writeLatin1String',
  'read',
]);
/** Module loading and compilation (startup, not per request). */
const isStartup = (url: string, name: string) =>
  url.startsWith('node:internal/modules') ||
  url.includes('amaro') ||
  url.startsWith('node:internal/bootstrap') ||
  name === 'internalModuleStat' ||
  name === 'compileFunction';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber?: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

function stepOf(url: string): string | undefined {
  const at = url.indexOf('/src/');
  if (at === -1) return undefined;
  const file = url.slice(at + 5);
  return STEPS.find(([prefix]) => file.startsWith(prefix))?.[1] ?? 'other';
}

/**
 * Busy time per step (µs), startup excluded. `functions`, when given, gets the same time per
 * innermost mcpgate function (`step: name file:line`).
 */
function attribute(profile: Profile, functions?: Map<string, number>): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const memo = new Map<number, string>();
  const where = new Map<number, string>();
  const classify = (id: number): string => {
    const cached = memo.get(id);
    if (cached !== undefined) return cached;
    const leaf = byId.get(id)!;
    const { url, functionName } = leaf.callFrame;
    let step: string;
    if (functionName === '(idle)') step = 'idle';
    else if (functionName === '(garbage collector)') step = 'garbage collection';
    else if (functionName === '(program)' || functionName === '(root)') step = 'V8 and native (program)';
    else if (url === '' && SYSCALLS.has(functionName)) step = 'socket syscalls (write, read)';
    else {
      step = HOPS;
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const frame = byId.get(at)!.callFrame;
        if (isStartup(frame.url, frame.functionName)) {
          step = 'startup';
          break;
        }
        const s = stepOf(frame.url);
        if (s !== undefined) {
          step = s;
          const file = frame.url.slice(frame.url.indexOf('/src/') + 5);
          where.set(
            id,
            `${s}: ${frame.functionName || '(anonymous)'} ${file}:${(frame.lineNumber ?? 0) + 1}`,
          );
          break;
        }
      }
    }
    memo.set(id, step);
    return step;
  };
  const time = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const step = classify(id);
    if (step === 'idle' || step === 'startup') return;
    time.set(step, (time.get(step) ?? 0) + (profile.timeDeltas[i] ?? 0));
    const fn = where.get(id);
    if (functions !== undefined && fn !== undefined)
      functions.set(fn, (functions.get(fn) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return time;
}

process.on('exit', killAll);
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-attr-'));
const origin = await startOrigin(dir, 1000);
const originUrl = `http://127.0.0.1:${origin.port}/mcp`;
const load = await loadGenerator(dir, 'wrk');

const profileArgs = (profileDir: string) => [
  '--cpu-prof',
  `--cpu-prof-dir=${profileDir}`,
  `--cpu-prof-interval=${values.interval}`,
];
const builds: { label: string; plain: Target; profiled: Target; profileDir: string }[] = [];
{
  const profileDir = join(dir, 'profile-floor');
  builds.push({
    label: 'floor',
    plain: await sessionAt(await startFloorProxy(dir, originUrl), 'floor'),
    profiled: await sessionAt(
      await startFloorProxy(dir, originUrl, profileArgs(profileDir), 'floor-profiled'),
      'floor',
    ),
    profileDir,
  });
}
for (const spec of values.gw) {
  const eq = spec.indexOf('=');
  const label = spec.slice(0, eq);
  const bin = spec.slice(eq + 1);
  const { config, headers: base } = await buildConfig(
    values.config,
    bin,
    originUrl,
    auditFileFor(dir, label),
  );
  const profileDir = join(dir, `profile-${label}`);
  const plain = await sessionAt(await startGateway(bin, dir, `${label}-plain`, config), label, base);
  const profiled = await sessionAt(
    await startGateway(bin, dir, `${label}-profiled`, config, profileArgs(profileDir)),
    label,
    base,
  );
  builds.push({ label, plain, profiled, profileDir });
}

const seconds = Number(values.seconds);
const run = (t: Target, s: number) =>
  load.run({ url: t.url, body: CALL, headers: t.headers, connections: 32, seconds: s });
const all = builds.flatMap((b) => [b.plain, b.profiled]);
for (const t of all) await run(t, 2);
const cpu = new Map<Target, { user: number; system: number; requests: number }>(
  all.map((t) => [t, { user: 0, system: 0, requests: 0 }]),
);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const t of all) {
    const before = await cpuTimes(t.proc.pid);
    const r = await run(t, seconds);
    const after = await cpuTimes(t.proc.pid);
    const c = cpu.get(t)!;
    c.user += after.user - before.user;
    c.system += after.system - before.system;
    c.requests += r.requests;
  }
}
const perRequest = (t: Target) => (cpu.get(t)!.user + cpu.get(t)!.system) / cpu.get(t)!.requests;
const SYSCALL_ROW = 'socket syscalls (write, read)';
for (const b of builds) await b.profiled.proc.stop();

const columns = builds.map((b) => {
  const file = readdirSync(b.profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`${b.label}: no profile written`);
  const functions = new Map<string, number>();
  const time = attribute(JSON.parse(readFileSync(join(b.profileDir, file), 'utf8')) as Profile, functions);
  const busy = [...time.values()].reduce((a, v) => a + v, 0);
  const total = perRequest(b.plain);
  if (values.scale === 'total') {
    const share = (t: number) => (t / busy) * total;
    return { label: b.label, total, functions, share, step: (s: string) => share(time.get(s) ?? 0) };
  }
  const { user, system, requests } = cpu.get(b.plain)!;
  // (`functions` holds no syscall samples.)
  const share = (t: number) => (t / (busy - (time.get(SYSCALL_ROW) ?? 0))) * (user / requests);
  return {
    label: b.label,
    total,
    functions,
    share,
    step: (s: string) => (s === SYSCALL_ROW ? system / requests : share(time.get(s) ?? 0)),
  };
});
const f = perRequest(builds[0]!.plain);
const lines = [
  `${values.config}, 32 connections, ${values.rounds} × ${seconds} s per process, load average before ${loadavg()[0]?.toFixed(2)}; µs of CPU (user + system) per request, scaled by ${values.scale === 'total' ? 'user + system (all samples)' : 'user time (samples outside syscalls) and system time (the syscall row)'}`,
  '',
  `| Step | ${columns.map((c) => c.label).join(' | ')} |`,
  `| --- | ${columns.map(() => '---:').join(' | ')} |`,
];
for (const step of ORDER) {
  if (step === 'startup') continue;
  const cells = columns.map((c) => c.step(step));
  if (cells.every((v) => v < 0.05)) continue;
  const shown =
    step === SYSCALL_ROW && values.scale !== 'total'
      ? 'system time (socket syscalls and all other kernel work)'
      : step;
  lines.push(`| ${shown} | ${cells.map((v) => v.toFixed(1)).join(' | ')} |`);
}
lines.push(
  `| **total** (measured without the profiler) | ${columns.map((c) => c.total.toFixed(1)).join(' | ')} |`,
);
lines.push(`| total / floor | ${columns.map((c) => `${(c.total / f).toFixed(2)}×`).join(' | ')} |`);
console.log(lines.join('\n'));
// `--functions N`: each build's N costliest mcpgate functions (innermost mcpgate frame), µs per request.
const topN = Number(values.functions);
if (topN > 0) {
  for (const c of columns.slice(1)) {
    console.log(`\n${c.label}: the ${topN} costliest mcpgate functions, µs per request`);
    for (const [fn, t] of [...c.functions].sort((a, b) => b[1] - a[1]).slice(0, topN))
      console.log(`${c.share(t).toFixed(2).padStart(7)}  ${fn}`);
  }
}

for (const b of builds) await b.plain.proc.stop();
await origin.stop();
if (values.keep) console.log(`profiles kept in ${dir}`);
else rmSync(dir, { recursive: true, force: true });
