/**
 * A/B of gateway builds in one run: the floor and one or more mcpgate checkouts (or one checkout
 * with different node flags) under the same wrk load, in alternating rounds, with user and system
 * CPU per request reported apart (the runner's CPU row sums them). For work on the hot path:
 *
 *   node bench/ab.ts --gw main=/work/main/bin/mcpgate.js --gw mine=bin/mcpgate.js \
 *     [--config passthrough|pipeline|tools-list] [--connections 32] [--rounds 5] [--duration 3]
 *     [--node-arg mine:--max-semi-space-size=16] [--node-arg floor:--trace-gc-nvp] [--gc] [--keep]
 *     [--env mine:NAME=VALUE] [--minimal] [--minimal-skip STEP,STEP]
 *
 * `--env LABEL:NAME=VALUE` adds a variable to one gateway's environment: one checkout can then run
 * as several targets that differ by a setting read from the environment (a switch-off variant of
 * one step, bench/README.md "The switch-off attribution").
 *
 * With `--gc` (every target runs with `--trace-gc-nvp`), each target's collections during the
 * measured rounds are summarised too (gc-trace.ts): scavenges and mark-compacts per 1,000 requests,
 * pauses, and the bytes per request allocated, surviving a scavenge and promoted.
 *
 * `tools-list`: `tools/list` of the origin's 1,000 tools for a key allowed half of them (use
 * `--connections 1`); the direct origin is measured in the same rounds, and p50/p99 are also given
 * as added over direct.
 *
 * `sse`: the pipeline configuration, loaded with the origin's SSE `tools/call` (a progress event,
 * then the result event at once: `delay_ms` 0), so CPU per request is that of a streamed call; then,
 * per target and in alternating rounds, `--sse-samples` sequential calls on one connection with a
 * 5 ms pause upstream between the two events, timed to the first event and to the end (the direct
 * origin beside them; the floor buffers a response whole, so its first-event time is its total).
 *
 * `--floor LABEL` (repeatable) adds another floor proxy, with the node flags given for LABEL (an
 * `--import` preload: is a cost of mcpgate's in its code, or in what loading it does to the process?).
 *
 * `--minimal` (pipeline only) adds bench/minimal-gateway.ts as the target `minimal`: the floor with
 * the pipeline's promised work done the shortest way a hand-written proxy would (no strict parse,
 * envelope rules or error paths), with the first gateway's key. It tells how much of the gap to the
 * floor the promises themselves take on this stack, and how much is mcpgate's way of keeping them.
 * `--minimal-skip audit,tag` (repeatable) adds one with those steps left out, as `minimal-audit-tag`.
 * With `--config passthrough` a minimal gateway must skip `auth` (the configuration has no key) and
 * audits to /dev/null, as the pass-through gateway does: `--minimal-skip auth,ratelimit,metrics`
 * is pass-through's promised work done plainly.
 *
 * `--direct` measures the origin itself in the same rounds for any configuration (`tools-list` and
 * `sse` always do), and prints each target's p50 and p99 added over it: the one-connection latency
 * target (`--connections 1`).
 *
 * `--header-orders N` (default 1) sends the client's headers in N different orders, round `r` in order
 * `r mod N` (every target warmed up with each): N kinds of client in turn, where one order is one
 * kind of client (bench/README.md, "One header order per client").
 *
 * Prints one line per target: median req/s, p50, p99, user µs/req, system µs/req, total vs floor,
 * and the main thread's share (user + system µs/req; the rest ran on V8's and libuv's workers).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGenerator } from './load.ts';
import type { LoadResult } from './load.ts';
import { CALL, LIST, sessionAt } from './measure.ts';
import { rpc, sseTimings } from './client.ts';
import type { Target } from './measure.ts';
import { auditFileFor, buildConfig } from './build-config.ts';
import { addGcLines, describeGc, emptyGc, logBytes } from './gc-trace.ts';
import {
  cpuTimes,
  killAll,
  startFloorProxy,
  startGateway,
  startMinimalGateway,
  startOrigin,
  steadyLoadOnly,
} from './processes.ts';
import { percentile, us } from './report.ts';
import { envFor, forLabel } from './target-args.ts';
import { headerOrder } from './header-order.ts';

steadyLoadOnly();
const { values } = parseArgs({
  options: {
    gw: { type: 'string', multiple: true, default: [] },
    config: { type: 'string', default: 'passthrough' },
    connections: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    'node-arg': { type: 'string', multiple: true, default: [] },
    env: { type: 'string', multiple: true, default: [] },
    keep: { type: 'boolean', default: false },
    gc: { type: 'boolean', default: false },
    'sse-samples': { type: 'string', default: '200' },
    minimal: { type: 'boolean', default: false },
    direct: { type: 'boolean', default: false },
    floor: { type: 'string', multiple: true, default: [] },
    'minimal-skip': { type: 'string', multiple: true, default: [] },
    'header-orders': { type: 'string', default: '1' },
  },
});
const minimals = [...(values.minimal ? [''] : []), ...values['minimal-skip']];
const passthrough = values.config === 'passthrough';
if (values.minimal && values.config !== 'pipeline') throw new Error('--minimal needs --config pipeline');
if (minimals.length > 0 && values.config !== 'pipeline' && !passthrough)
  throw new Error('--minimal-skip needs --config pipeline or passthrough');
if (passthrough && minimals.some((skip) => !skip.split(',').includes('auth')))
  throw new Error('with --config passthrough, --minimal-skip must include auth (no key is configured)');
const sse = values.config === 'sse';
const orders = Number(values['header-orders']);
if (!Number.isInteger(orders) || orders < 1) throw new Error('--header-orders takes a whole number from 1');
if (values.gw.length === 0)
  values.gw.push(`mcpgate=${new URL('../bin/mcpgate.js', import.meta.url).pathname}`);

/** The origin's SSE tool call, its result sent right after the progress event (under load). */
const SSE_CALL = rpc(9, 'tools/call', {
  name: 'stream',
  arguments: { delay_ms: 0 },
  _meta: { progressToken: 'ab' },
});
const SSE_DELAY_MS = 5;

process.on('exit', killAll);
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-ab-'));
const origin = await startOrigin(dir, 1000);
const originUrl = `http://127.0.0.1:${origin.port}/mcp`;
const load = await loadGenerator(dir, 'wrk');
const targets: Target[] = [];
const argsFor = (label: string) => [
  ...forLabel(values['node-arg'], label),
  ...(values.gc ? ['--trace-gc-nvp'] : []),
];
const floor = await startFloorProxy(dir, originUrl, argsFor('floor'));
targets.push(await sessionAt(floor, 'floor'));
// More floors, each with its own node flags (`--floor f2 --node-arg f2:--import=PRELOAD`): what a
// preload (mcpgate's modules, an idle gateway in the same process) costs the bare two hops.
for (const label of values.floor)
  targets.push(await sessionAt(await startFloorProxy(dir, originUrl, argsFor(label), label), label));

for (const spec of values.gw) {
  const eq = spec.indexOf('=');
  const label = spec.slice(0, eq);
  const bin = spec.slice(eq + 1);
  const nodeArgs = argsFor(label);
  const { config, headers: base } = await buildConfig(
    sse ? 'pipeline' : values.config,
    bin,
    originUrl,
    auditFileFor(dir, label),
  );
  const proc = await startGateway(bin, dir, label, config, nodeArgs, envFor(values.env, label));
  targets.push(await sessionAt(proc, label, base));
  // The minimal gateways take the first gateway's key.
  if (targets.length === 2 && minimals.length > 0) {
    // Pass-through has no key (every minimal skips auth there): any hash does.
    const keyHash = passthrough ? '0'.repeat(64) : (config.keys as { hash: string }[])[0]!.hash;
    for (const skip of minimals) {
      const name = skip === '' ? 'minimal' : `minimal-${skip.replaceAll(',', '-')}`;
      const minimal = await startMinimalGateway(
        dir,
        originUrl,
        keyHash.replace(/^sha256:/, ''),
        passthrough ? '/dev/null' : auditFileFor(dir, name),
        argsFor(name),
        name,
        skip,
      );
      targets.push(await sessionAt(minimal, name, base));
    }
  }
}

const list = values.config === 'tools-list';
const direct = list || sse || values.direct;
if (direct) {
  targets.push(await sessionAt(origin, 'direct'));
}
const connections = Number(values.connections);
const seconds = Number(values.duration);
const spec = (t: Target, s: number, order = 0) => ({
  url: t.url,
  body: list ? LIST : sse ? SSE_CALL : CALL,
  headers: headerOrder(t.headers, order),
  connections,
  seconds: s,
});
// With --header-orders N, each target is warmed up with every order (1 s each after the first).
for (const t of targets)
  for (let order = 0; order < orders; order++)
    await load.run(spec(t, order === 0 ? Number(values.warmup) : 1, order));
const runs = targets.map(() => [] as LoadResult[]);
const used = targets.map(() => ({ user: 0, sys: 0, main: 0, faults: 0, switches: 0, requests: 0 }));
const gcs = targets.map(() => emptyGc());
for (let round = 0; round < Number(values.rounds); round++) {
  // The order flips every round: the target measured last in a round was seen to pay 10-15 µs more
  // system time per request, so a fixed order would favour the builds listed first.
  const order = [...targets.entries()];
  if (round % 2 === 1) order.reverse();
  for (const [i, t] of order) {
    const before = await cpuTimes(t.proc.pid);
    const logFrom = logBytes(t.proc.log);
    const r = await load.run(spec(t, seconds, round % orders));
    const after = await cpuTimes(t.proc.pid);
    addGcLines(gcs[i]!, t.proc.log, logFrom, logBytes(t.proc.log));
    runs[i]!.push(r);
    used[i]!.user += after.user - before.user;
    used[i]!.sys += after.system - before.system;
    used[i]!.main += after.main - before.main;
    used[i]!.faults += after.faults - before.faults;
    used[i]!.switches += after.switches - before.switches;
    used[i]!.requests += r.requests;
  }
}
const floorTotal = (used[0]!.user + used[0]!.sys) / used[0]!.requests;
const floorP99 = percentile(
  runs[0]!.map((r) => r.p99),
  50,
);
console.log(
  `${values.config}, ${connections} conns, ${values.rounds}×${seconds}s, load before ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
);
for (const [i, t] of targets.entries()) {
  const rs = runs[i]!;
  const u = used[i]!;
  const user = u.user / u.requests;
  const sys = u.sys / u.requests;
  const p99 = percentile(
    rs.map((r) => r.p99),
    50,
  );
  console.log(
    `${t.label.padEnd(10)} ${Math.round(
      percentile(
        rs.map((r) => r.rps),
        50,
      ),
    )
      .toString()
      .padStart(6)} req/s  ` +
      `p50 ${us(
        percentile(
          rs.map((r) => r.p50),
          50,
        ),
      ).padStart(8)}  p99 ${us(p99).padStart(8)} (${(p99 / floorP99).toFixed(2)}×)  ` +
      `user ${us(user).padStart(6)}  sys ${us(sys).padStart(6)}  total ${((user + sys) / floorTotal).toFixed(2)}× floor  ` +
      `main thread ${us(u.main / u.requests).padStart(6)}  ` +
      `faults ${(u.faults / u.requests).toFixed(2)}/req  switches ${(u.switches / u.requests).toFixed(2)}/req`,
  );
}
// With --node-arg LABEL:--trace-gc-nvp: each target's collections during the measured rounds.
for (const [i, t] of targets.entries()) {
  const gc = gcs[i]!;
  if (gc.scavenges + gc.markCompacts > 0)
    console.log(`${t.label.padEnd(10)} gc: ${describeGc(gc, used[i]!.requests)}`);
}
if (sse) {
  // Time to the first event, one connection, sequential calls: the rounds alternate the targets.
  const rounds = Number(values.rounds);
  const per = Math.max(1, Math.ceil(Number(values['sse-samples']) / rounds));
  const timings = targets.map(() => ({ first: [] as number[], total: [] as number[] }));
  for (const t of targets) await sseTimings(t.url, t.headers, 20, SSE_DELAY_MS);
  for (let round = 0; round < rounds; round++) {
    const order = [...targets.entries()];
    if (round % 2 === 1) order.reverse();
    for (const [i, t] of order) {
      const got = await sseTimings(t.url, t.headers, per, SSE_DELAY_MS);
      timings[i]!.first.push(...got.first);
      timings[i]!.total.push(...got.total);
    }
  }
  for (const [i, t] of targets.entries()) {
    const { first, total } = timings[i]!;
    console.log(
      `${t.label.padEnd(10)} SSE first event p50 ${us(percentile(first, 50)).padStart(8)}  p99 ${us(percentile(first, 99)).padStart(8)}  ` +
        `whole p50 ${us(percentile(total, 50)).padStart(8)} (${first.length} calls, ${SSE_DELAY_MS} ms between the events)`,
    );
  }
}
if (list || values.direct) {
  const median = (i: number, f: (r: LoadResult) => number) => percentile(runs[i]!.map(f), 50);
  const d = targets.findIndex((t) => t.label === 'direct');
  for (const [i, t] of targets.entries()) {
    if (i === 0 || i === d) continue;
    const p50 = median(i, (r) => r.p50) - median(d, (r) => r.p50);
    const p99 = median(i, (r) => r.p99) - median(d, (r) => r.p99);
    console.log(`${t.label.padEnd(10)} added over direct: p50 +${us(p50)}  p99 +${us(p99)}`);
  }
}
for (const t of targets.slice(1)) if (t.label !== 'direct') await t.proc.stop();
await floor.stop();
await origin.stop();
if (values.keep) console.log(`logs kept in ${dir}`);
else rmSync(dir, { recursive: true, force: true });
