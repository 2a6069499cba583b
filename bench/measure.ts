/**
 * How a scenario measures: its context (processes, load generator, settings), the targets it
 * compares (direct or through a gateway, each with an MCP session), the interleaved rounds, and the
 * gateway configurations the scenarios share.
 */
import { BASE_HEADERS, expectReply, openSession, rpc } from './client.ts';
import type { LoadGenerator, LoadResult } from './load.ts';
import { cpuTimes } from './processes.ts';
import type { KeyMaterial, Proc } from './processes.ts';
import { capped, infoRow, percentile, us } from './report.ts';
import type { Row } from './report.ts';

export interface Context {
  readonly dir: string;
  readonly origin: Proc;
  readonly originUrl: string;
  readonly load: LoadGenerator;
  /** Seconds per measured round, rounds per target, seconds of warm-up per target. */
  readonly seconds: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly tools: number;
  /** Idle GET stream counts, each measured with fresh processes. */
  readonly streams: readonly number[];
  readonly sseSamples: number;
  readonly sseDelayMs: number;
  readonly redisBinary: string | undefined;
  /** Share of failed requests that makes a measurement invalid (MAX_ERROR_RATE; larger for --smoke). */
  readonly maxErrorRate: number;
  key(label: string): Promise<KeyMaterial>;
  /** Starts mcpgate with `config` (listen is added); stopped when the scenario ends. */
  gateway(name: string, config: Record<string, unknown>): Promise<Proc>;
  redis(): Promise<Proc>;
  /** The floor proxy (floor-proxy.ts) in front of the origin, stopped when the scenario ends. */
  floorProxy(): Promise<Proc>;
  /** A new origin of its own (same tool count), stopped when the scenario ends. */
  freshOrigin(): Promise<Proc>;
  log(message: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly notes: string;
  run(ctx: Context): Promise<Row[]>;
}

export interface Target {
  readonly label: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The process whose CPU time per request is reported (the gateway, or the origin when direct). */
  readonly proc: Proc;
}

export interface Measured extends LoadResult {
  /** User + system CPU time the target's process spent per request, and the two apart (µs). */
  readonly cpu: number;
  readonly cpuUser: number;
  readonly cpuSystem: number;
}

export const CALL = rpc(7, 'tools/call', { name: 'tool_000_search_issues', arguments: { query: 'bench' } });
export const LIST = rpc(8, 'tools/list');
export const HUGE = { capacity: 1e9, refill_per_second: 1e9 };
/** Errors tolerated in a measurement (sockets closed as wrk stops); more makes it invalid. */
export const MAX_ERROR_RATE = 0.001;

export async function direct(ctx: Context): Promise<Target> {
  return {
    label: 'direct',
    url: ctx.originUrl,
    headers: await openSession(ctx.originUrl, BASE_HEADERS),
    proc: ctx.origin,
  };
}

export async function via(gw: Proc, label: string, key?: KeyMaterial): Promise<Target> {
  const base = key ? { ...BASE_HEADERS, authorization: `Bearer ${key.key}` } : BASE_HEADERS;
  return sessionAt(gw, label, base);
}

/** A target on `proc`'s /mcp, its session opened with `base` headers. */
export async function sessionAt(
  proc: Proc,
  label: string,
  base: Readonly<Record<string, string>> = BASE_HEADERS,
): Promise<Target> {
  const url = `http://127.0.0.1:${proc.port}/mcp`;
  return { label, url, headers: await openSession(url, base), proc };
}

export async function checkCall(t: Target): Promise<void> {
  await expectReply(`tools/call via ${t.label}`, t.url, t.headers, CALL, (m) => {
    const content = (m.result as { content?: { text?: unknown }[] } | undefined)?.content;
    return content?.[0]?.text === 'ok' ? undefined : 'not the origin\'s "ok" result';
  });
}

const median = (values: readonly number[]) => percentile(values, 50);

/**
 * Measures each target at `connections`: a warm-up per target, then `rounds` runs that alternate
 * between the targets (direct, gateway, direct, gateway...) so drift on a shared machine hits both
 * sides alike. Reports the median round's figures and the CPU time per request over all rounds.
 */
export async function compare(
  ctx: Context,
  targets: readonly Target[],
  body: string,
  connections: number,
): Promise<Measured[]> {
  const spec = (t: Target, seconds: number) => ({
    url: t.url,
    body,
    headers: t.headers,
    connections,
    seconds,
  });
  if (ctx.warmup > 0) for (const t of targets) await ctx.load.run(spec(t, ctx.warmup));
  const runs = targets.map(() => [] as LoadResult[]);
  const cpu = targets.map(() => ({ user: 0, system: 0 }));
  for (let round = 0; round < ctx.rounds; round++) {
    for (const [i, t] of targets.entries()) {
      const cpu0 = await cpuTimes(t.proc.pid);
      runs[i]!.push(await ctx.load.run(spec(t, ctx.seconds)));
      const cpu1 = await cpuTimes(t.proc.pid);
      cpu[i]!.user += cpu1.user - cpu0.user;
      cpu[i]!.system += cpu1.system - cpu0.system;
    }
  }
  return targets.map((t, i) => {
    const rs = runs[i]!;
    const requests = rs.reduce((sum, r) => sum + r.requests, 0);
    const errors = rs.reduce((sum, r) => sum + r.errors, 0);
    const what = `${t.label}, ${connections} conn`;
    if (errors > requests * ctx.maxErrorRate) {
      throw new Error(`${what}: ${errors} errors or non-2xx answers in ${requests} requests`);
    }
    const m: Measured = {
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      requests,
      errors,
      seconds: rs.reduce((sum, r) => sum + r.seconds, 0),
      cpu: (cpu[i]!.user + cpu[i]!.system) / Math.max(1, requests),
      cpuUser: cpu[i]!.user / Math.max(1, requests),
      cpuSystem: cpu[i]!.system / Math.max(1, requests),
    };
    ctx.log(
      `  ${what.padEnd(34)} ${Math.round(m.rps).toString().padStart(6)} req/s  p50 ${us(m.p50)}  p99 ${us(m.p99)}  ` +
        `cpu/req ${us(m.cpu)} (user ${us(m.cpuUser)}, sys ${us(m.cpuSystem)})  (rounds: ${rs.map((r) => Math.round(r.rps)).join(', ')} req/s)`,
    );
    return m;
  });
}

const split = (m: Measured) => `${Math.round(m.cpuUser)} user + ${Math.round(m.cpuSystem)} sys`;

/**
 * CPU time per request of the two targets' processes: steadier than throughput on a shared machine.
 * With `max`, PASS when `got` spends at most `max` times `base`'s (issue 14's targets are written
 * against the floor's CPU per request).
 */
export function cpuRow(
  base: [string, Measured],
  got: [string, Measured],
  metric = 'CPU time per request, 32 conns',
  max?: number,
): Row {
  const ratio = got[1].cpu / base[1].cpu;
  const row = infoRow(
    metric,
    `${base[0]} ${us(base[1].cpu)} (${split(base[1])})`,
    `${got[0]} ${us(got[1].cpu)} (${split(got[1])})`,
    `${ratio.toFixed(2)}×`,
  );
  return max === undefined ? row : capped(row, ratio, max);
}

export const passthroughConfig = (ctx: Context) => ({
  upstream: { url: ctx.originUrl },
  auth: { allow_unauthenticated: true },
  rate_limit: { ...HUGE, max_streams: 100_000 },
  audit: { output: '/dev/null' },
});

export function pipelineConfig(
  ctx: Context,
  keys: object[],
  audit: string,
  redisPort?: number,
): Record<string, unknown> {
  return {
    upstream: { url: ctx.originUrl },
    keys,
    rate_limit:
      redisPort === undefined
        ? { backend: 'memory' }
        : { backend: 'redis', redis: { url: `redis://127.0.0.1:${redisPort}` } },
    audit: { output: audit },
  };
}

export const keyEntry = (key: KeyMaterial, allow: string[], maxStreams = 10) => ({
  label: key.label,
  hash: key.hash,
  allow,
  rate_limit: { ...HUGE, max_streams: maxStreams },
});
