/**
 * `npm run demo` (examples/demo/run.ts), run as a real process: it refuses a taken port in words
 * that name the port and the variable that changes it, prints a next step that works when pasted
 * into bash, and stops on the first Ctrl-C (SIGINT to its process group, as a terminal sends it).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer, connect } from 'node:net';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../helpers/net.ts';

const RUN = fileURLToPath(new URL('../../examples/demo/run.ts', import.meta.url));

interface Demo {
  readonly child: ChildProcess;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; at: number }>;
}

function startDemo(port: number): Demo {
  // Its own process group, so the test can signal the group as a terminal's Ctrl-C does.
  const child = spawn(process.execPath, [RUN], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let err = '';
  child.stdout!.resume();
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, at: Date.now() })),
  );
  return { child, stderr: () => err, exited };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm run demo', () => {
  const started: Demo[] = [];
  let holder: Server | undefined;
  after(async () => {
    for (const d of started) if (groupAlive(d.child.pid!)) process.kill(-d.child.pid!, 'SIGKILL');
    if (holder) await new Promise((r) => holder!.close(r));
  });

  it('refuses a taken port, naming the port and PORT, and exits non-zero', async () => {
    holder = createServer();
    await new Promise<void>((r) => holder!.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const demo = startDemo(port);
    started.push(demo);
    const timeout = setTimeout(() => process.kill(-demo.child.pid!, 'SIGKILL'), 20_000);
    const { code } = await demo.exited;
    clearTimeout(timeout);
    assert.equal(code, 1, `exit code (stderr: ${demo.stderr()})`);
    assert.match(demo.stderr(), new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    assert.match(demo.stderr(), /PORT=\d+ npm run demo/);
  });

  it('prints a next step that works as pasted, and stops on the first Ctrl-C', async () => {
    const port = await freePort();
    const demo = startDemo(port);
    started.push(demo);
    await waitFor(
      () => {
        if (demo.child.exitCode !== null) throw new Error(`demo exited: ${demo.stderr()}`);
        return demo.stderr().includes('Ctrl-C to stop') || undefined;
      },
      30_000,
      'the demo to start',
    );
    const block = /^# --- try it ---\n([^]*?)^# --- end ---$/m.exec(demo.stderr());
    assert.ok(block, 'the demo prints its try-it block');
    const run = spawnSync('bash', ['-e', '-c', block[1]!], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(
      run.stdout,
      /"text":"hello through mcpgate"/,
      'the tool call went through with the session id',
    );
    assert.match(run.stdout, /"id":2/);

    const sent = Date.now();
    process.kill(-demo.child.pid!, 'SIGINT');
    const timeout = setTimeout(() => process.kill(-demo.child.pid!, 'SIGKILL'), 10_000);
    const { code, at } = await demo.exited;
    clearTimeout(timeout);
    assert.equal(code, 0, `exit code after one SIGINT (stderr tail: ${demo.stderr().slice(-500)})`);
    assert.ok(at - sent < 5000, `stopped ${at - sent} ms after one SIGINT (bound 5000 ms)`);
    await waitFor(() => !groupAlive(demo.child.pid!) || undefined, 3000, 'the gateway child to be gone');
    assert.equal(await accepts(port), false, 'nothing listens on the demo port any more');
  });
});
