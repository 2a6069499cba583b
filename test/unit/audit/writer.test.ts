import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { BATCH_BYTES, BATCH_MS, createAuditWriter } from '../../../src/audit/writer.ts';
import { createAuditLog } from '../../../src/audit/audit.ts';
import { fakeContext, SECRETS } from './fake-context.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-audit-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'complete lines only');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('audit writer', () => {
  it('writes exactly N lines for N records, in order, and close() flushes them all', async () => {
    const file = join(dir, 'n.log');
    const writer = createAuditWriter({ output: file });
    await writer.ready();
    const n = 5000;
    for (let i = 0; i < n; i++) writer.write({ i, pad: 'x'.repeat(i % 300) });
    await writer.close();
    const got = await lines(file);
    assert.equal(got.length, n);
    assert.deepEqual(
      got.map((l) => l.i),
      Array.from({ length: n }, (_, i) => i),
    );
  });

  it('flush() resolves once written lines are in the file, without closing', async () => {
    const file = join(dir, 'flush.log');
    const writer = createAuditWriter({ output: file });
    for (let i = 0; i < 100; i++) writer.write({ i });
    await writer.flush();
    assert.equal((await lines(file)).length, 100);
    writer.write({ i: 100 });
    await writer.flush();
    assert.equal((await lines(file)).length, 101);
    await writer.flush(); // idle: resolves at once
    await writer.close();
  });

  it('flush() still resolves after a line whose writing threw (nothing of it was queued)', async () => {
    const file = join(dir, 'threw.log');
    const writer = createAuditWriter({ output: file });
    writer.write({ i: 0 });
    await writer.flush();
    assert.throws(() =>
      writer.append({
        writeTo() {
          throw new RangeError('Invalid time value');
        },
      }),
    );
    const flushed = await Promise.race([
      writer.flush().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
    ]);
    assert.ok(flushed, 'flush() resolved');
    assert.equal((await lines(file)).length, 1);
    await writer.close();
  });

  it('reopen() after a rename (logrotate) continues in a new file at the same path', async () => {
    const file = join(dir, 'rotate.log');
    const rotated = join(dir, 'rotate.log.1');
    const writer = createAuditWriter({ output: file });
    await writer.ready();
    for (let i = 0; i < 10; i++) writer.write({ phase: 'before', i });
    await writer.flush();
    await rename(file, rotated);
    // Lines written after the rename but before the reopen still go to the old file (same fd).
    writer.write({ phase: 'between' });
    writer.reopen();
    for (let i = 0; i < 7; i++) writer.write({ phase: 'after', i });
    await writer.close();
    const old = await lines(rotated);
    const fresh = await lines(file);
    assert.equal(old.length + fresh.length, 18, 'no line lost or duplicated');
    assert.equal(old.filter((l) => l.phase === 'before').length, 10);
    assert.equal(fresh.filter((l) => l.phase === 'after').length, 7);
    assert.ok(fresh.every((l) => l.phase !== 'before'));
  });

  it('hands lines written over many event-loop turns to one write per batch window', async (t) => {
    const file = join(dir, 'batch.log');
    const writer = createAuditWriter({ output: file });
    await writer.ready();
    const writes = t.mock.method(fs, 'write');
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    for (let i = 0; i < 20; i++) {
      writer.write({ i });
      t.mock.timers.tick(0); // the end of an event-loop turn
    }
    assert.equal(writes.mock.callCount(), 0, 'no write per turn');
    t.mock.timers.tick(BATCH_MS);
    assert.equal(writes.mock.callCount(), 1, 'one write for the window');
    t.mock.timers.reset();
    await writer.close();
    assert.equal((await lines(file)).length, 20);
  });

  it('hands lines over at the end of the turn once BATCH_BYTES wait', async (t) => {
    const file = join(dir, 'batch-bytes.log');
    const writer = createAuditWriter({ output: file });
    await writer.ready();
    const writes = t.mock.method(fs, 'write');
    t.mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
    const pad = 'p'.repeat(1000);
    const n = Math.ceil(BATCH_BYTES / 1000) + 1;
    for (let i = 0; i < n; i++) writer.write({ i, pad });
    assert.equal(writes.mock.callCount(), 0, 'not within the turn');
    t.mock.timers.tick(0);
    assert.equal(writes.mock.callCount(), 1, 'at the end of the turn, before the window ends');
    t.mock.timers.reset();
    await writer.close();
    assert.equal((await lines(file)).length, n);
  });

  it('flushSync() has written the pending lines when it returns, whatever the threadpool does', async (t) => {
    const file = join(dir, 'sync.log');
    const writer = createAuditWriter({ output: file, closeTimeoutMs: 100 });
    await writer.ready();
    // A threadpool that never gets to the write (as when the process exits right after).
    t.mock.method(fs, 'write', () => {});
    for (let i = 0; i < 5; i++) writer.write({ i });
    writer.flushSync();
    assert.equal(
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '').length,
      5,
    );
    t.mock.restoreAll();
    await writer.close();
  });

  it('creates the file with restrictive permissions', async () => {
    const file = join(dir, 'mode.log');
    const writer = createAuditWriter({ output: file });
    await writer.ready();
    await writer.close();
    assert.equal((await stat(file)).mode & 0o777, 0o640);
  });

  it('a file that cannot be opened fails at creation with the fs error', () => {
    assert.throws(() => createAuditWriter({ output: join(dir, 'missing-dir', 'a.log') }), { code: 'ENOENT' });
  });

  it('a write after close() is dropped and reported once, never thrown', async () => {
    const file = join(dir, 'closed.log');
    const errors: Error[] = [];
    const writer = createAuditWriter({ output: file, onError: (e) => errors.push(e) });
    writer.write({ i: 1 });
    await writer.close();
    writer.write({ i: 2 });
    writer.write({ i: 3 });
    assert.equal(errors.length, 1);
    assert.equal((await lines(file)).length, 1);
    await writer.close(); // idempotent
  });

  /**
   * Runs `ending` in a child after it wrote n lines through the writer to `output` (its stdout by
   * default); the lines are read from the pipe, or from the file once the child has exited.
   */
  async function childLines(
    n: number,
    ending: string,
    output = 'stdout',
  ): Promise<{ code: number | null; lines: string[] }> {
    const script = `
      import { createAuditWriter } from ${JSON.stringify(new URL('../../../src/audit/writer.ts', import.meta.url).href)};
      const w = createAuditWriter({ output: ${JSON.stringify(output)} });
      for (let i = 0; i < ${n}; i++) w.write({ i, pad: 'y'.repeat(200) });
      ${ending}
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, UV_THREADPOOL_SIZE: '4' },
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    if (output !== 'stdout') out = fs.readFileSync(output, 'utf8');
    return { code, lines: out.split('\n').filter((l) => l !== '') };
  }

  it('a file: lines written before the open could complete survive an exit in the same turn', async () => {
    // The exit comes before any event-loop turn: with the file opened asynchronously there was no fd
    // yet, the lines were lost (and pino's exit hook threw "sonic boom is not ready yet").
    for (const ending of ['process.exit(0);', 'w.flushSync(); process.exit(0);']) {
      const file = join(dir, `early-${ending.length}.log`);
      const { code, lines: got } = await childLines(3, ending, file);
      assert.equal(code, 0, ending);
      assert.deepEqual(
        got.map((l) => (JSON.parse(l) as { i: number }).i),
        [0, 1, 2],
        ending,
      );
    }
  });

  it('an exit while a batch waits for a busy threadpool: the newer lines land after it (file, pipe)', async () => {
    // The threadpool is busy (as with OAuth's WebCrypto verifications) when the first batch is
    // handed over, so its write is still queued when the exit hook writes the newer lines. They
    // landed first (100..199 before 0..99): libuv still runs the queued write at exit, after them.
    const ending = `
      const { pbkdf2 } = await import('node:crypto');
      for (let t = 0; t < 4; t++) pbkdf2('x', 'y', 300000, 32, 'sha256', () => {});
      await new Promise((r) => setTimeout(r, 30));
      for (let i = 100; i < 200; i++) w.write({ i });
      process.exit(0);
    `;
    for (const output of ['stdout', join(dir, 'busy.log')]) {
      const { code, lines: got } = await childLines(100, ending, output);
      assert.equal(code, 0, output);
      assert.deepEqual(
        got.map((l) => (JSON.parse(l) as { i: number }).i),
        Array.from({ length: 200 }, (_, i) => i),
        output,
      );
    }
  });

  it('stdout: every line reaches the pipe before close() resolves', async () => {
    const { code, lines: got } = await childLines(2000, 'await w.close(); process.exit(0);');
    assert.equal(code, 0);
    assert.equal(got.length, 2000);
    assert.equal((JSON.parse(got[1999]!) as { i: number }).i, 1999);
  });

  it('a closed stdout pipe (EPIPE) is reported, refuses requests from then on, and close() still returns promptly', async () => {
    const script = `
      import { createAuditWriter } from ${JSON.stringify(new URL('../../../src/audit/writer.ts', import.meta.url).href)};
      let failed = false;
      const w = createAuditWriter({ output: 'stdout', closeTimeoutMs: 60000, onError: (e) => {
        failed = true;
        process.stderr.write('audit error ' + e.code + '\\n');
      }, onRefusing: (refusing) => process.stderr.write('refusing ' + refusing + '\\n') });
      const deadline = Date.now() + 5000;
      while (!failed && Date.now() < deadline) {
        w.write({ pad: 'z'.repeat(1000) });
        await new Promise((r) => setImmediate(r));
      }
      process.stderr.write('accepting ' + w.accepting() + '\\n');
      const t = Date.now();
      await w.close();
      process.stderr.write('closed in ' + (Date.now() - t < 2000 ? 'time' : 'too long') + '\\n');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, err);
    assert.match(
      err,
      /^(refusing true\naudit error EPIPE|audit error EPIPE\nrefusing true)\naccepting false\nclosed in time\n$/,
    );
  });

  it('a process that ends without close() (nothing left to run) loses no line', async () => {
    const { code, lines: got } = await childLines(3, '');
    assert.equal(code, 0);
    assert.equal(got.length, 3);
  });

  it('a crash (uncaught exception) right after writing loses no line', async () => {
    const { code, lines: got } = await childLines(2000, "throw new Error('boom');");
    assert.notEqual(code, 0);
    assert.equal(got.length, 2000);
    assert.equal((JSON.parse(got[1999]!) as { i: number }).i, 1999);
  });
});

describe('audit log (record + writer)', () => {
  it('one line per record, no secret from the request headers in the file', async () => {
    const file = join(dir, 'audit.log');
    const audit = createAuditLog({ output: file, log_arguments: true, redact: ['password'] });
    await audit.ready();
    const ctx = fakeContext({
      messages: [
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'x', arguments: { password: 'pw-1' } },
        },
      ],
      calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'x', decision: 'allow' }],
    });
    for (let i = 0; i < 3; i++) audit.record(ctx, Date.now(), performance.now());
    await audit.close();
    const text = await readFile(file, 'utf8');
    assert.equal(text.split('\n').length, 4);
    for (const secret of [...Object.values(SECRETS), 'pw-1']) assert.ok(!text.includes(secret), secret);
    const first = JSON.parse(text.split('\n')[0]!) as Record<string, unknown>;
    assert.deepEqual(first.arguments, { password: '[redacted]' });
    assert.equal('level' in first || 'pid' in first || 'hostname' in first || 'msg' in first, false);
  });
});
