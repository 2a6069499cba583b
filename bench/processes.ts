/**
 * The processes a benchmark needs, each in its own OS process so none shares an event loop with the
 * load generator: the fast origin, mcpgate with a given config, and redis-server. Also what /proc
 * says about them (RSS, CPU time).
 */
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { request } from 'undici';

const run = promisify(execFile);

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  readonly log: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
/** Kills every child still running (on exit, errors and Ctrl-C). */
export function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Spawns `cmd args` with stdout and stderr going to `log` (no pipe for this process to drain), in
 * this process's environment plus `env`.
 */
function start(
  name: string,
  cmd: string,
  args: string[],
  log: string,
  port: number,
  env: Readonly<Record<string, string>> = {},
): Proc {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  live.add(child);
  child.on('exit', () => live.delete(child));
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  return {
    name,
    child,
    pid: child.pid,
    port,
    log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it resolves true; fails early with the log's tail if the process exits. */
async function waitReady(proc: Proc, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}):\n${tail(proc.log)}`,
      );
    }
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  await proc.stop();
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms:\n${tail(proc.log)}`);
}

export async function startOrigin(dir: string, tools: number, name = 'origin'): Promise<Proc> {
  const port = await freePort();
  const script = new URL('./origin.ts', import.meta.url).pathname;
  const proc = start(
    name,
    process.execPath,
    [script, '--port', String(port), '--tools', String(tools)],
    join(dir, `${name}.log`),
    port,
  );
  await waitReady(proc, async () => {
    const res = await request(`http://127.0.0.1:${port}/stats`);
    await res.body.text();
    return res.statusCode === 200;
  });
  return proc;
}

/** The floor proxy (floor-proxy.ts) in front of `upstreamUrl`; ready once it relays a ping. */
export async function startFloorProxy(
  dir: string,
  upstreamUrl: string,
  nodeArgs: readonly string[] = [],
  name = 'floor-proxy',
): Promise<Proc> {
  return startScriptProxy('floor-proxy.ts', [], [200], dir, upstreamUrl, nodeArgs, name);
}

/**
 * bench/minimal-gateway.ts: the floor with the pipeline's promised work done the shortest way, for
 * the key whose SHA-256 is `keyHash`.
 */
export async function startMinimalGateway(
  dir: string,
  upstreamUrl: string,
  keyHash: string,
  auditFile: string,
  nodeArgs: readonly string[] = [],
  name = 'minimal-gateway',
  skip = '',
): Promise<Proc> {
  const extra = ['--key-hash', keyHash, '--audit', auditFile, '--skip', skip];
  // 401 to a ping without the key; 200 with `--skip auth`.
  return startScriptProxy('minimal-gateway.ts', extra, [401, 200], dir, upstreamUrl, nodeArgs, name);
}

async function startScriptProxy(
  file: string,
  extra: readonly string[],
  readyStatuses: readonly number[],
  dir: string,
  upstreamUrl: string,
  nodeArgs: readonly string[],
  name: string,
): Promise<Proc> {
  const port = await freePort();
  const script = new URL(`./${file}`, import.meta.url).pathname;
  const args = [...nodeArgs, script, '--port', String(port), '--upstream', upstreamUrl, ...extra];
  const proc = start(name, process.execPath, args, join(dir, `${name}.log`), port);
  await waitReady(proc, async () => readyStatuses.includes(await postPing(port)));
  return proc;
}

/** POSTs a JSON-RPC ping to /mcp on `port`; resolves with the HTTP status. */
async function postPing(port: number): Promise<number> {
  const res = await request(`http://127.0.0.1:${port}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":0,"method":"ping"}',
  });
  await res.body.text();
  return res.statusCode;
}

export async function originStats(origin: Proc): Promise<{ streams: number; requests: number }> {
  const res = await request(`http://127.0.0.1:${origin.port}/stats`);
  return (await res.body.json()) as { streams: number; requests: number };
}

/**
 * Writes `config` (JSON, which is YAML) with `listen` filled in and starts `bin serve --config`,
 * with `env` added to its environment. Ready once POST /mcp gets any HTTP answer.
 */
export async function startGateway(
  bin: string,
  dir: string,
  name: string,
  config: Record<string, unknown>,
  nodeArgs: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): Promise<Proc> {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, JSON.stringify({ listen: `127.0.0.1:${port}`, ...config }, null, 2));
  // As the executable and the container image run it (scripts/build-bin.ts): the gateway's gc is the
  // process's own, not a second V8 context's. `--node-arg NAME:--no-expose-gc` measures an npm
  // install started without NODE_OPTIONS=--expose-gc (V8 takes the last of the two).
  const args = ['--expose-gc', ...nodeArgs, bin, 'serve', '--config', file];
  const proc = start(`mcpgate (${name})`, process.execPath, args, join(dir, `${name}.log`), port, env);
  await waitReady(proc, async () => (await postPing(port)) > 0);
  return proc;
}

export async function startRedis(dir: string, binary = '/usr/bin/redis-server'): Promise<Proc> {
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  const proc = start('redis', binary, args, join(dir, 'redis.log'), port);
  await waitReady(proc, async () => {
    const socket = connect(port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      socket.write('PING\r\n');
      const [data] = (await once(socket, 'data')) as [Buffer];
      return data.toString().startsWith('+PONG');
    } finally {
      socket.destroy();
    }
  });
  return proc;
}

export interface KeyMaterial {
  readonly label: string;
  readonly key: string;
  readonly hash: string;
}

/** `mcpgate keygen --label L --json`: the gateway checks the key format, so the bench uses real keys. */
export async function keygen(bin: string, label: string): Promise<KeyMaterial> {
  const { stdout } = await run(process.execPath, [bin, 'keygen', '--label', label, '--json']);
  const parsed = JSON.parse(stdout) as Partial<KeyMaterial>;
  if (typeof parsed.key !== 'string' || typeof parsed.hash !== 'string') {
    throw new Error('keygen --json did not print {"label","key","hash"}');
  }
  return { label, key: parsed.key, hash: parsed.hash };
}

let ticks: number | undefined;
async function clockTicks(): Promise<number> {
  if (ticks === undefined) {
    ticks = await run('getconf', ['CLK_TCK']).then(
      ({ stdout }) => Number(stdout.trim()) || 100,
      () => 100,
    );
  }
  return ticks;
}

/**
 * User and system CPU time of a process (all its threads), in microseconds, and of its main thread
 * alone (`main`, user + system): the rest is V8's and libuv's worker threads (GC helpers, the
 * compiler, the file system pool).
 */
export async function cpuTimes(
  pid: number,
): Promise<{ user: number; system: number; main: number; faults: number; switches: number }> {
  const fields = statFields(`/proc/${pid}/stat`);
  const thread = statFields(`/proc/${pid}/task/${pid}/stat`);
  const scale = 1e6 / (await clockTicks());
  return {
    user: Number(fields[11]) * scale,
    system: Number(fields[12]) * scale,
    main: (Number(thread[11]) + Number(thread[12])) * scale,
    faults: Number(fields[7]),
    switches: contextSwitches(pid),
  };
}

/** The fields of a /proc stat file after the command name (which may hold spaces). */
function statFields(path: string): string[] {
  const stat = readFileSync(path, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Voluntary and involuntary context switches of a process's threads so far. */
function contextSwitches(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
    for (const m of status.matchAll(/ctxt_switches:\s+(\d+)/g)) total += Number(m[1]);
  }
  return total;
}

/** User + system CPU time of a process (all its threads), in microseconds. */
export async function cpuMicros(pid: number): Promise<number> {
  const { user, system } = await cpuTimes(pid);
  return user + system;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

/**
 * For benchmarks that alternate targets under steady load: no idle memory reclaim in the gateways
 * they start (`limits.idle_reclaim`, through the environment, which builds without the setting
 * ignore). A gateway waiting out the other targets' rounds would otherwise give back its young
 * generation and start its next round smaller, a cost no steady load pays and builds without the
 * reclaim would not share. bench/soak.ts keeps the default: giving memory back is what it measures.
 */
export function steadyLoadOnly(): void {
  process.env.MCPGATE_LIMITS_IDLE_RECLAIM ??= '0s';
}
