/**
 * Review (auditfail): the audit log and the operator's signals when the audit destination fails.
 * A destination that refuses every write (a file past RLIMIT_FSIZE, as a full disk: EFBIG; /dev/full:
 * ENOSPC) hung a crashed gateway in its exit hook, cut a SIGTERM shutdown short (no "stopped", the
 * pid file left) and held every line it refused without bound; a failed SIGHUP reopen cut the
 * shutdown short too; a named pipe whose reader restarted lost every later line for good, and a
 * SIGHUP while it had no reader froze the gateway.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { BIN } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

let upstream: SdkUpstream;
let dir: string;
before(async () => {
  upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-auditfail-'));
});
after(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

function configText(output: string): string {
  return [
    'listen: 127.0.0.1:0',
    'upstream:',
    `  url: ${upstream.url}`,
    'auth:',
    '  allow_unauthenticated: true',
    'audit:',
    `  output: ${output}`,
    'shutdown:',
    '  grace: 1s',
    '',
  ].join('\n');
}

function call(url: string, n: number): Promise<number | 'failed'> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: n,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'x'.repeat(600) } },
  });
  return fetch(url, { method: 'POST', headers: { ...HEADERS, 'x-request-id': randomUUID() }, body }).then(
    async (res) => {
      await res.arrayBuffer();
      return res.status;
    },
    () => 'failed' as const,
  );
}

/** `mcpgate serve` with files limited to `fileBlocks` blocks of ulimit -f (RLIMIT_FSIZE: writes past it fail with EFBIG). */
async function serveLimited(name: string, output: string, fileBlocks: number, extra: string[] = []) {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, configText(output));
  const child = spawn(
    'sh',
    [
      '-c',
      `ulimit -f ${fileBlocks}; exec "$0" "$@"`,
      process.execPath,
      BIN,
      'serve',
      '--config',
      path,
      ...extra,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.resume();
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  after(() => void child.kill('SIGKILL'));
  const url = await waitFor(() => /listening on (http:\/\/[^\s"]+)/.exec(err)?.[1], 20_000, 'listen');
  return { child, url, stderr: () => err, exit };
}

/** A node child running `script` (ESM, the writer imported as W), under `ulimit -f fileBlocks` when given. */
function child(script: string, fileBlocks?: number) {
  const writer = new URL('../../src/audit/writer.ts', import.meta.url).href;
  const code = `import * as W from ${JSON.stringify(writer)};\n${script}`;
  const args = ['--input-type=module', '-e', code];
  const proc =
    fileBlocks === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit -f ${fileBlocks}; exec "$0" "$@"`, process.execPath, ...args], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout.resume();
  after(() => void proc.kill('SIGKILL'));
  const exit = new Promise<number | null | 'hung'>((resolve) => {
    const timer = setTimeout(() => resolve('hung'), 8000);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  return { exit, stderr: () => err };
}

describe('the exit path when the audit destination fails (an uncaught error)', () => {
  // A line longer than the file may grow (ulimit -f 1: one block), a batch later another, then a crash.
  const crash = (output: string) => `
    const w = W.createAuditWriter({ output: ${JSON.stringify(output)}, onError: (e) => console.error('audit write failed', e.code) });
    w.write({ first: 'x'.repeat(2000) });
    setTimeout(() => { w.write({ second: 1 }); setTimeout(() => { throw new Error('boom'); }, 1); }, 50);
  `;

  it('failed before: a regular file past its size limit (EFBIG, as a full disk): the crashed process exits', async () => {
    const run = child(crash(join(dir, 'crash-efbig.log')), 1);
    const code = await run.exit;
    assert.notEqual(code, 'hung', `the process hung in its exit hook: ${run.stderr()}`);
    assert.notEqual(code, 0);
    assert.match(run.stderr(), /boom/);
    assert.match(run.stderr(), /audit write failed EFBIG/);
  });

  it('failed before: /dev/full (ENOSPC on every write): the crashed process exits', async (t) => {
    if (!existsSync('/dev/full')) return t.skip('no /dev/full on this system');
    const run = child(crash('/dev/full'));
    const code = await run.exit;
    assert.notEqual(code, 'hung', `the process hung in its exit hook: ${run.stderr()}`);
    assert.notEqual(code, 0);
    assert.match(run.stderr(), /boom/);
  });
});

describe('memory while the audit destination fails', () => {
  it('failed before: /dev/full under load: the lines waiting for it stay bounded (they grew without bound, off the heap)', async (t) => {
    if (!existsSync('/dev/full')) return t.skip('no /dev/full on this system');
    // 3 * MAX_BACKLOG_BYTES of lines, a batch at a time, none of which the destination takes.
    const run = child(`
      const lines = [];
      const w = W.createAuditWriter({ output: '/dev/full', onError: (e) => lines.push(e.message) });
      const line = { pad: 'x'.repeat(400) };
      const max = 64 * 1024 * 1024; // MAX_BACKLOG_BYTES
      const total = 3 * max;
      for (let sent = 0; sent < total; sent += 5000 * 412) {
        for (let i = 0; i < 5000; i++) w.write(line);
        await new Promise((r) => setTimeout(r, 12));
      }
      const held = process.memoryUsage().arrayBuffers;
      await w.close();
      console.error(JSON.stringify({ held, max, lines }));
      process.exit(0);
    `);
    assert.equal(await run.exit, 0, run.stderr());
    const out = JSON.parse(run.stderr().trim().split('\n').at(-1)!) as {
      held: number;
      max: number;
      lines: string[];
    };
    assert.ok(out.held < 2.5 * out.max, `${out.held} bytes held for ${out.max} allowed`);
    assert.deepEqual(
      out.lines.filter((l) => l.startsWith('audit lines dropped')),
      ['audit lines dropped: the audit destination is not taking them'],
      'said once',
    );
    const counted = out.lines.filter((l) => / audit lines were dropped /.test(l));
    assert.equal(counted.length, 1, 'counted when the log closed');
    assert.ok(Number(counted[0]!.split(' ')[0]) > 100_000, counted[0]);
  });
});

describe('SIGTERM when the audit file cannot be written (real mcpgate serve)', () => {
  it('failed before: a full audit file: the shutdown finishes ("stopped", the pid file removed)', async () => {
    const pid = join(dir, 'full.pid');
    const gw = await serveLimited('full', join(dir, 'full.log'), 1, ['--pid-file', pid]);
    for (let i = 0; i < 3; i++) {
      assert.equal(await call(gw.url, i), 200);
      await new Promise((r) => setTimeout(r, 30)); // a batch each: the first fills the file
    }
    await waitFor(() => /audit write failed/.test(gw.stderr()) || undefined, 5000, 'the failed write');
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exit, 0, gw.stderr());
    assert.match(gw.stderr(), /"msg":"stopped"/, 'the shutdown ran to its end');
    assert.equal(existsSync(pid), false, 'the pid file is removed');
    assert.equal(gw.stderr().split('audit write failed').length - 1, 1, 'said once');
  });

  it('failed before: a SIGHUP whose reopen failed (the directory moved away): SIGTERM still finishes, no line lost', async () => {
    const sub = join(dir, 'rotated');
    await mkdir(sub);
    const pid = join(dir, 'rotated.pid');
    const gw = await serveLimited('rotated', join(sub, 'audit.log'), 100_000, ['--pid-file', pid]);
    assert.equal(await call(gw.url, 1), 200);
    await rename(sub, `${sub}.old`);
    gw.child.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(gw.stderr()) || undefined, 5000, 'the reload');
    assert.match(gw.stderr(), /audit write failed.*|"code":"ENOENT"/);
    assert.equal(await call(gw.url, 2), 200);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exit, 0, gw.stderr());
    assert.match(gw.stderr(), /"msg":"stopped"/, 'the shutdown ran to its end');
    assert.equal(existsSync(pid), false, 'the pid file is removed');
    const lines = (await readFile(join(`${sub}.old`, 'audit.log'), 'utf8')).trim().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { rpc_id: number }).rpc_id),
      [1, 2],
    );
  });
});

describe('a named pipe as the audit output (real mcpgate serve)', () => {
  /** A reader of the pipe (`cat`), and what it has read. */
  function reader(fifo: string) {
    const cat = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    cat.stdout.on('data', (d: Buffer) => (text += d.toString()));
    after(() => void cat.kill('SIGKILL'));
    const ids = () =>
      text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => (JSON.parse(l) as { rpc_id: number }).rpc_id);
    return { cat, ids, exit: new Promise((r) => cat.once('exit', r)) };
  }

  it('failed before: a SIGHUP while no reader has it open does not freeze the gateway', async (t) => {
    const fifo = join(dir, 'hup.fifo');
    const made = spawn('mkfifo', [fifo]);
    if ((await new Promise((r) => made.once('exit', r))) !== 0) return t.skip('no mkfifo');
    const first = reader(fifo);
    const gw = await serveLimited('hup-fifo', fifo, 100_000);
    assert.equal(await call(gw.url, 1), 200);
    await waitFor(() => first.ids().length === 1 || undefined, 5000, 'the first line');
    first.cat.kill('SIGKILL');
    await first.exit;
    gw.child.kill('SIGHUP'); // a config reload (`mcpgate reload`), or logrotate's postrotate
    const answered = await Promise.race([
      call(gw.url, 2),
      new Promise((r) => setTimeout(() => r('no answer in 3 s'), 3000)),
    ]);
    assert.equal(answered, 200, gw.stderr());
    await waitFor(() => /config reloaded/.test(gw.stderr()) || undefined, 5000, 'the reload');
    const second = reader(fifo);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await call(gw.url, 3), 200);
    await waitFor(() => second.ids().length === 2 || undefined, 5000, `the next lines: ${second.ids()}`);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exit, 0, gw.stderr());
    assert.deepEqual([...first.ids(), ...second.ids()], [1, 2, 3]);
  });

  it('failed before: its reader restarts (EPIPE): the lines go to the next reader, none dropped for good', async (t) => {
    const fifo = join(dir, 'audit.fifo');
    const made = spawn('mkfifo', [fifo]);
    if ((await new Promise((r) => made.once('exit', r))) !== 0) return t.skip('no mkfifo');
    const first = reader(fifo);
    const gw = await serveLimited('fifo', fifo, 100_000);
    assert.equal(await call(gw.url, 1), 200);
    await waitFor(() => first.ids().length === 1 || undefined, 5000, 'the first line');
    first.cat.kill('SIGKILL');
    await first.exit;
    assert.equal(await call(gw.url, 2), 200);
    await waitFor(() => /"code":"EPIPE"/.test(gw.stderr()) || undefined, 5000, 'the failed write');
    const second = reader(fifo);
    await new Promise((r) => setTimeout(r, 100)); // the reader has opened the pipe
    assert.equal(await call(gw.url, 3), 200);
    await waitFor(() => second.ids().length === 2 || undefined, 5000, `the next lines: ${second.ids()}`);
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exit, 0, gw.stderr());
    assert.match(gw.stderr(), /"msg":"stopped"/);
    assert.deepEqual([...first.ids(), ...second.ids()], [1, 2, 3]);
  });
});
