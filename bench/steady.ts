/**
 * The floor and gateway builds under load AT THE SAME TIME, each driven by its own wrk, with no idle
 * gaps: CPU per request of each over the same windows. ab.ts alternates its targets, so each sits
 * idle while the others run (a quarter to a fifth of the time loaded with four or five targets);
 * this shows whether a difference between builds survives steady load (bench/README.md, "The
 * switch-off attribution"). The targets share the cores, so absolute rates are low; compare ratios.
 *
 *   node bench/steady.ts --gw main=/work/main/bin/mcpgate.js --gw mine=bin/mcpgate.js \
 *     [--env mine:NAME=VALUE] [--node-arg mine:FLAG] [--config pipeline|passthrough] \
 *     [--connections 8] [--warmup 10] [--windows 4] [--duration 10]
 *
 * Prints, per target: req/s, user and system µs per request, total against the floor's, and the
 * ratio of each window to the floor's window (warming up shows as falling ratios).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
import { envFor, forLabel } from './target-args.ts';

steadyLoadOnly();
const { values } = parseArgs({
  options: {
    gw: { type: 'string', multiple: true, default: [] },
    env: { type: 'string', multiple: true, default: [] },
    'node-arg': { type: 'string', multiple: true, default: [] },
    config: { type: 'string', default: 'pipeline' },
    connections: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '10' },
    windows: { type: 'string', default: '4' },
    duration: { type: 'string', default: '10' },
  },
});
if (values.gw.length === 0) throw new Error('at least one --gw NAME=BIN');

process.on('exit', killAll);
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-steady-'));
const origin = await startOrigin(dir, 1000);
const originUrl = `http://127.0.0.1:${origin.port}/mcp`;
const load = await loadGenerator(dir, 'wrk');
const targets: Target[] = [await sessionAt(await startFloorProxy(dir, originUrl), 'floor')];
for (const spec of values.gw) {
  const eq = spec.indexOf('=');
  const label = spec.slice(0, eq);
  const bin = spec.slice(eq + 1);
  const env = envFor(values.env, label);
  const { config, headers } = await buildConfig(values.config, bin, originUrl, auditFileFor(dir, label));
  const proc = await startGateway(bin, dir, label, config, forLabel(values['node-arg'], label), env);
  targets.push(await sessionAt(proc, label, headers));
}
const run = (seconds: number) =>
  Promise.all(
    targets.map((t) =>
      load.run({
        url: t.url,
        body: CALL,
        headers: t.headers,
        connections: Number(values.connections),
        seconds,
      }),
    ),
  );
await run(Number(values.warmup));
const windows = Number(values.windows);
const seconds = Number(values.duration);
const used = targets.map(() => ({ user: 0, sys: 0, requests: 0, perWindow: [] as number[] }));
for (let w = 0; w < windows; w++) {
  const before = await Promise.all(targets.map((t) => cpuTimes(t.proc.pid)));
  const results = await run(seconds);
  const after = await Promise.all(targets.map((t) => cpuTimes(t.proc.pid)));
  for (const [i, u] of used.entries()) {
    const user = after[i]!.user - before[i]!.user;
    const sys = after[i]!.system - before[i]!.system;
    u.user += user;
    u.sys += sys;
    u.requests += results[i]!.requests;
    u.perWindow.push((user + sys) / results[i]!.requests);
  }
}
const floor = used[0]!;
const floorTotal = (floor.user + floor.sys) / floor.requests;
console.log(
  `steady ${values.config}, all targets loaded at once, ${values.connections} conns each, ${windows}×${seconds}s, ` +
    `load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`,
);
for (const [i, t] of targets.entries()) {
  const u = used[i]!;
  const total = (u.user + u.sys) / u.requests;
  const windowRatios = u.perWindow.map((c, w) => (c / floor.perWindow[w]!).toFixed(2)).join(' ');
  console.log(
    `${t.label.padEnd(10)} ${Math.round(u.requests / (windows * seconds))
      .toString()
      .padStart(
        6,
      )} req/s  user ${(u.user / u.requests).toFixed(1)} µs  sys ${(u.sys / u.requests).toFixed(1)} µs  ` +
      `total ${(total / floorTotal).toFixed(2)}× floor  by window ${windowRatios}`,
  );
}
rmSync(dir, { recursive: true, force: true });
process.exit(0);
