/** Runs @modelcontextprotocol/server-everything (streamableHttp or sse) on a free loopback port. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { freePort, waitFor } from './net.ts';

const require = createRequire(import.meta.url);

export interface Everything {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  close(): Promise<void>;
}

export async function startEverything(
  mode: 'streamableHttp' | 'sse' = 'streamableHttp',
): Promise<Everything> {
  const entry = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');
  const port = await freePort();
  const child = spawn(process.execPath, [entry, mode], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  await waitFor(
    () =>
      /listening|running/i.test(output)
        ? true
        : child.exitCode !== null
          ? Promise.reject(new Error(output))
          : undefined,
    15_000,
    'server-everything to listen',
  );
  return {
    url: `http://127.0.0.1:${port}${mode === 'sse' ? '/sse' : '/mcp'}`,
    port,
    child,
    async close() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
