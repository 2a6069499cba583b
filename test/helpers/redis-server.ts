/**
 * A real redis-server for integration tests: on a free loopback port, without persistence, in a
 * temporary directory. It can be stopped (killed, to simulate a crash) and started again on the
 * same port. A missing redis-server is an error with a clear message, never a silent skip.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER_PATH = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Stops the server: SIGKILL by default (a crash), or SIGTERM. Resolves when it has exited. */
  stop(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts it again on the same port (empty: nothing was saved). */
  start(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open but nothing is answered. */
  pause(): void;
  /** Lets a paused process go on (SIGCONT). */
  resume(): void;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER_PATH)) {
    throw new Error(
      `redis-server not found at ${REDIS_SERVER_PATH}: the Redis integration tests need it. ` +
        'Install the Debian package (apt-get install -y redis-server) or set REDIS_SERVER to its path.',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'mcpgate-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    if (child) throw new Error('redis-server is already running');
    let stderr = '';
    const proc = spawn(
      REDIS_SERVER_PATH,
      [
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
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child = proc;
    exited = new Promise((resolve) => {
      proc.once('exit', () => {
        if (child === proc) child = undefined;
        resolve();
      });
    });
    const deadline = Date.now() + 10_000;
    while (!(await ping(port))) {
      if (child !== proc) throw new Error(`redis-server exited at start: ${stderr.trim()}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`redis-server did not answer PING on port ${port} within 10 s: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const stop = async (signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> => {
    if (!child) return;
    child.kill(signal);
    await exited;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
    async close() {
      child?.kill('SIGCONT');
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when something on the port answers `+PONG`. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}
