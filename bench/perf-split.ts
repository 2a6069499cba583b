/**
 * Where the floor's and a gateway's main threads spend their time per request, side by side, from
 * call-graph samples (issue 14's attribution, bench/README.md "Who calls what costs"): each target
 * is loaded alone by wrk (the `ab.ts` configurations and headers), `perf record -g -e cpu-clock`
 * samples its main thread for `--seconds` in the middle of the load, and the samples are split by
 * owner (the innermost JavaScript function on the stack, charged with the builtins, C++ and kernel
 * code it called: perf-samples.ts). Requests are the origin's count over the sampled window, so a
 * row is microseconds per request forwarded.
 *
 *   node bench/perf-split.ts [--gw bin/mcpgate.js] [--config passthrough|pipeline] [--seconds 6]
 *     [--connections 32] [--top 40] [--keep]
 *
 * Needs `perf` (Debian: linux-perf) and permission to sample another process (root, or
 * kernel.perf_event_paranoid <= 1). cpu-clock, not cycles: this machine's perf has no hardware
 * counters. The rows are sampled, so a row under about 0.3 µs per request is noise; compare rows
 * of one run, not of two.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { loadGenerator } from './load.ts';
import { CALL, sessionAt } from './measure.ts';
import type { Target } from './measure.ts';
import { auditFileFor, buildConfig } from './build-config.ts';
import {
  killAll,
  originStats,
  startFloorProxy,
  startGateway,
  startOrigin,
  steadyLoadOnly,
} from './processes.ts';
import { inFiles, splitSamples } from './perf-samples.ts';
import type { Split } from './perf-samples.ts';

const run = promisify(execFile);
steadyLoadOnly();
const { values } = parseArgs({
  options: {
    gw: { type: 'string', default: new URL('../bin/mcpgate.js', import.meta.url).pathname },
    config: { type: 'string', default: 'passthrough' },
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '32' },
    top: { type: 'string', default: '40' },
    keep: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const top = Number(values.top);
for (const [name, n] of [
  ['--seconds', seconds],
  ['--connections', connections],
  ['--top', top],
] as const)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} takes a whole number from 1`);
if (values.config !== 'passthrough' && values.config !== 'pipeline')
  throw new Error('--config is passthrough or pipeline');
await run('perf', ['--version']).catch(() => {
  throw new Error('perf is not installed (apt-get install -y linux-perf)');
});

/** Sampling frequency; one sample stands for 1/HZ s of the thread's time. */
const HZ = 1999;
const PROF = ['--perf-basic-prof'];

process.on('exit', killAll);
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-perf-split-'));
const origin = await startOrigin(dir, 1000);
const originUrl = `http://127.0.0.1:${origin.port}/mcp`;
const load = await loadGenerator(dir, 'wrk');
const bin = resolve(values.gw);
// Frames are named without the checkouts' paths, so the floor's undici rows match the gateway's.
const checkouts = [resolve(bin, '../..') + '/', new URL('..', import.meta.url).pathname];
const floor = await sessionAt(await startFloorProxy(dir, originUrl, PROF), 'floor');
const { config, headers } = await buildConfig(values.config, bin, originUrl, auditFileFor(dir, 'mcpgate'));
const gateway = await sessionAt(await startGateway(bin, dir, 'mcpgate', config, PROF), 'mcpgate', headers);

/** The target under load: warmed up, then sampled in the middle of a longer run. */
async function sample(t: Target): Promise<{ split: Split; requests: number }> {
  const spec = { url: t.url, body: CALL, headers: t.headers, connections };
  await load.run({ ...spec, seconds: 8 });
  const loaded = load.run({ ...spec, seconds: seconds + 3 });
  await new Promise((r) => setTimeout(r, 1500));
  const data = join(dir, `${t.label}.data`);
  const before = (await originStats(origin)).requests;
  const args = ['record', '-g', '-e', 'cpu-clock', '-F', String(HZ), '-t', String(t.proc.pid), '-o', data];
  await run('perf', [...args, '--', 'sleep', String(seconds)]);
  const requests = (await originStats(origin)).requests - before;
  const r = await loaded;
  if (r.errors > 0) throw new Error(`${t.label}: ${r.errors} errors under load`);
  console.log(`${t.label}: ${Math.round(r.rps)} req/s over the run`);
  const { stdout } = await run('perf', ['script', '-i', data], { maxBuffer: 1 << 30 });
  return { split: splitSamples(stdout, checkouts, 'src/'), requests };
}

const floorRun = await sample(floor);
const gatewayRun = await sample(gateway);
const perRequest = (n: number | undefined, requests: number) => ((n ?? 0) * 1e6) / HZ / requests;
const f = (us: number) => us.toFixed(2).padStart(7);
const busy = (s: { split: Split; requests: number }) => perRequest(s.split.samples, s.requests);

console.log(
  `${values.config}, ${connections} connections, ${seconds} s sampled each at ${HZ} Hz: ` +
    `${floorRun.requests} requests through the floor, ${gatewayRun.requests} through mcpgate`,
);
console.log(
  `main thread busy, µs per request: floor ${f(busy(floorRun))}, mcpgate ${f(busy(gatewayRun))} ` +
    `(${(busy(gatewayRun) / busy(floorRun)).toFixed(2)}×)`,
);
console.log('\nBy owner (the JavaScript that ran or called it), µs per request, largest difference first:');
console.log(`${'floor'.padStart(7)} ${'mcpgate'.padStart(7)} ${'diff'.padStart(7)}  owner`);
const owners = new Set([...floorRun.split.byOwner.keys(), ...gatewayRun.split.byOwner.keys()]);
const rows = [...owners].map((name) => {
  const a = perRequest(floorRun.split.byOwner.get(name), floorRun.requests);
  const b = perRequest(gatewayRun.split.byOwner.get(name), gatewayRun.requests);
  return { name, a, b };
});
for (const { name, a, b } of rows.sort((x, y) => y.b - y.a - (x.b - x.a)).slice(0, top))
  console.log(`${f(a)} ${f(b)} ${f(b - a)}  ${name}`);
const own = rows.filter((r) => inFiles(r.name, 'src/')).reduce((sum, r) => sum + r.b, 0);
console.log(`\nmcpgate's own functions (src/), with what they called: ${f(own)} µs per request`);
console.log('\nInclusive, mcpgate src/ functions, µs per request:');
for (const [name, n] of [...gatewayRun.split.inclusive].sort((x, y) => y[1] - x[1]).slice(0, top))
  console.log(`${f(perRequest(n, gatewayRun.requests))}  ${name}`);
if (values.keep) console.log(`\nkept ${dir}`);
else {
  rmSync(dir, { recursive: true, force: true });
  // The JIT symbol maps --perf-basic-prof wrote.
  for (const t of [floor, gateway]) rmSync(`/tmp/perf-${t.proc.pid}.map`, { force: true });
}
process.exit(0);
