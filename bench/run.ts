/**
 * Runs the benchmark: `node bench/run.ts` (all scenarios, `npm run bench`) or
 * `node bench/run.ts --scenario passthrough[,sse...]`. Prints a table per scenario and refreshes its
 * block in bench/README.md. Exits 1 only when the harness could not measure (a process failed, a
 * target answered wrongly or with errors under load); a missed target is printed as MISS.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadGenerator } from './load.ts';
import {
  keygen,
  killAll,
  startFloorProxy,
  startGateway,
  startOrigin,
  startRedis,
  steadyLoadOnly,
} from './processes.ts';
import type { KeyMaterial, Proc } from './processes.ts';
import { machine, table, updateReadme } from './report.ts';
import { SCENARIOS } from './scenarios.ts';
import { printProfiles } from './profile.ts';
import type { Context } from './measure.ts';
import { MAX_ERROR_RATE } from './measure.ts';

const HELP = `Usage: node bench/run.ts [options]
  --scenario LIST     comma-separated: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)
  --duration S        seconds per measured round (default 2)
  --rounds N          rounds per target, alternating direct and gateway (default 3)
  --warmup S          seconds of warm-up per target before its rounds (default 2)
  --tools N           tools in the origin's tools/list (default 1000)
  --streams N[,N...]  idle GET stream counts, each with fresh processes (default 1000,5000;
                      the open-file limit is raised with prlimit when too low)
  --sse-samples N     SSE requests timed per target (default 100)
  --sse-delay MS      origin's pause between the progress and the result event (default 50)
  --gateway PATH      the mcpgate entry point (default bin/mcpgate.js; env MCPGATE_BENCH_BIN)
  --load wrk|autocannon   load generator (default: wrk when installed)
  --redis PATH        redis-server binary (default /usr/bin/redis-server; "none" to skip)
  --profile           run each mcpgate with --cpu-prof; prints the hottest functions
                      (implies --keep and --no-readme; profiles stay in the temporary directory)
  --node-arg ARG      pass ARG to each mcpgate's node (repeatable), e.g. --node-arg=--trace-gc
                      (its output goes to the gateway's log; use with --keep)
  --smoke             a short run that only proves every scenario still measures (CI): 1 round of
                      1 s, no warm-up, 50 tools, 20 streams, 3 SSE samples; implies --no-readme
  --no-readme         print only; do not update bench/README.md
  --keep              keep the temporary directory (configs, logs, audit file)`;

steadyLoadOnly();
const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    duration: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '2' },
    tools: { type: 'string', default: '1000' },
    streams: { type: 'string', default: '1000,5000' },
    'sse-samples': { type: 'string', default: '100' },
    'sse-delay': { type: 'string', default: '50' },
    gateway: {
      type: 'string',
      default: process.env.MCPGATE_BENCH_BIN ?? new URL('../bin/mcpgate.js', import.meta.url).pathname,
    },
    load: { type: 'string' },
    redis: { type: 'string', default: '/usr/bin/redis-server' },
    'no-readme': { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} must be a non-negative number`);
    process.exit(2);
  }
  return n;
}

if (values.smoke) {
  // Figures from a run this short are noise; it checks that the harness and every scenario work.
  Object.assign(values, {
    duration: '1',
    rounds: '1',
    warmup: '0',
    tools: '50',
    streams: '20',
    'sse-samples': '3',
    'no-readme': true,
  });
}
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
const wanted = (values.scenario ?? []).flatMap((s) => s.split(',')).filter(Boolean);
const unknown = wanted.filter((w) => !SCENARIOS.some((s) => s.name === w));
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}\n\n${HELP}`);
  process.exit(2);
}
if (values.load !== undefined && values.load !== 'wrk' && values.load !== 'autocannon') {
  console.error('--load must be wrk or autocannon');
  process.exit(2);
}
const selected = wanted.length > 0 ? SCENARIOS.filter((s) => wanted.includes(s.name)) : SCENARIOS;
const bin = values.gateway;
const readme = new URL('./README.md', import.meta.url).pathname;
const log = (message: string) => process.stderr.write(`${message}\n`);

process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

const loadBefore = loadavg()[0] ?? 0;
if (loadBefore > 0.5)
  log(
    `warning: load average ${loadBefore.toFixed(2)} before the run; other processes share the CPU and add noise`,
  );
const dir = mkdtempSync(join(tmpdir(), 'mcpgate-bench-'));
let failed = false;
let origin: Proc | undefined;
try {
  const load = await loadGenerator(dir, values.load as 'wrk' | 'autocannon' | undefined);
  const tools = positive('tools', values.tools);
  origin = await startOrigin(dir, tools);
  const keys = new Map<string, Promise<KeyMaterial>>();
  const redisBinary = values.redis !== 'none' && existsSync(values.redis) ? values.redis : undefined;
  log(`mcpgate bench · ${machine(load.name, loadBefore)} · origin pid ${origin.pid} · files in ${dir}`);

  for (const scenario of selected) {
    const started: Proc[] = [];
    const ctx: Context = {
      dir,
      origin,
      originUrl: `http://127.0.0.1:${origin.port}/mcp`,
      load,
      seconds: positive('duration', values.duration),
      rounds: Math.max(1, Math.round(positive('rounds', values.rounds))),
      warmup: positive('warmup', values.warmup),
      tools,
      streams: values.streams.split(',').map((n) => positive('streams', n)),
      sseSamples: positive('sse-samples', values['sse-samples']),
      sseDelayMs: positive('sse-delay', values['sse-delay']),
      redisBinary,
      // A smoke run on a loaded CI machine may see a few requests time out (a Redis command under
      // load); it proves the harness works, so only a failure rate that means breakage fails it.
      maxErrorRate: values.smoke ? 0.05 : MAX_ERROR_RATE,
      key(label) {
        let key = keys.get(label);
        if (key === undefined) {
          key = keygen(bin, label);
          keys.set(label, key);
        }
        return key;
      },
      async gateway(name, config) {
        const nodeArgs = [
          ...(values['node-arg'] ?? []),
          ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles', name)}`] : []),
        ];
        const proc = await startGateway(bin, dir, name, config, nodeArgs);
        started.push(proc);
        return proc;
      },
      async freshOrigin() {
        const proc = await startOrigin(dir, tools, `origin-${scenario.name}`);
        started.push(proc);
        return proc;
      },
      async floorProxy() {
        const proc = await startFloorProxy(dir, `http://127.0.0.1:${origin!.port}/mcp`);
        started.push(proc);
        return proc;
      },
      async redis() {
        const proc = await startRedis(dir, redisBinary);
        started.push(proc);
        return proc;
      },
      log,
    };
    log(`\n== ${scenario.name}: ${scenario.title}`);
    try {
      const rows = await scenario.run(ctx);
      const text = `### ${scenario.title}\n\n${machine(load.name, loadBefore)}\n\n${table(rows)}\n\n${scenario.notes}`;
      console.log(`\n${text}\n`);
      if (!values['no-readme'] && !values.profile) updateReadme(readme, scenario.name, text);
    } catch (err) {
      failed = true;
      log(`!! ${scenario.name} could not be measured: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      for (const proc of started.reverse()) await proc.stop();
      if (values.profile) await printProfiles(join(dir, 'profiles'), log);
    }
  }
} catch (err) {
  failed = true;
  log(`!! ${err instanceof Error ? err.message : String(err)}`);
} finally {
  await origin?.stop();
  if (failed || values.keep || values.profile) log(`files kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;
