/**
 * The audit log of a real `mcpgate serve` process at its edges: a SIGTERM in the middle of a load
 * (every request that got a response has exactly one line, and no line is for a request nobody
 * sent), each kind of output (a file, stdout, /dev/null), and an output that fails every write
 * (/dev/full: ENOSPC, as a full disk): the gateway keeps serving, says so once on its own log, and
 * still stops cleanly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { BIN, startServe } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';
import { forwards } from '../helpers/tags.ts';
import type { ServeProcess } from '../helpers/cli.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

let upstream: SdkUpstream;
let dir: string;
before(async () => {
  upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-audit-exit-'));
});
after(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

function configText(output: string, grace: string): string {
  return [
    'listen: 127.0.0.1:0',
    'upstream:',
    `  url: ${upstream.url}`,
    'auth:',
    '  allow_unauthenticated: true',
    'audit:',
    `  output: ${output}`,
    'shutdown:',
    `  grace: ${grace}`,
    '',
  ].join('\n');
}

async function serve(name: string, output: string, grace = '5s'): Promise<ServeProcess> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, configText(output, grace));
  return startServe(['--config', path, '--log-level', 'info']);
}

/** One tools/call with our own request id; resolves to its status, or 'failed' (refused, reset). */
function call(url: string, id: string, n: number, ms: number): Promise<number | 'failed'> {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: n,
    method: 'tools/call',
    params: ms > 0 ? { name: 'slow', arguments: { ms } } : { name: 'echo', arguments: { text: id } },
  });
  return fetch(url, { method: 'POST', headers: { ...HEADERS, 'x-request-id': id }, body }).then(
    async (res) => {
      await res.arrayBuffer();
      return res.status;
    },
    () => 'failed' as const,
  );
}

/**
 * Keeps `workers` requests in flight, a mix of quick and slow calls, until `stop()`; SIGTERM comes
 * in the middle. Returns every request id sent and what each got.
 */
function load(url: string, workers: number) {
  const outcomes = new Map<string, number | 'failed'>();
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped) {
      const id = randomUUID();
      n++;
      const status = await call(url, id, n, n % 4 === 0 ? 150 : 0);
      outcomes.set(id, status);
      if (status === 'failed') break; // the listener is closed: the gateway is going away
    }
  });
  return {
    outcomes,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

function parse(text: string): { request_id: string; status: number; decision: string }[] {
  assert.ok(text === '' || text.endsWith('\n'), 'complete lines only');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { request_id: string; status: number; decision: string });
}

/** Every answered request has exactly one line; every line is a request that was sent. */
function assertOneLineEach(
  lines: { request_id: string; status: number }[],
  outcomes: Map<string, number | 'failed'>,
): void {
  const seen = new Map<string, number>();
  for (const line of lines) seen.set(line.request_id, (seen.get(line.request_id) ?? 0) + 1);
  for (const [id, count] of seen) {
    assert.equal(count, 1, `request ${id} has ${count} lines`);
    assert.ok(outcomes.has(id), `a line for a request nobody sent: ${id}`);
  }
  let answered = 0;
  for (const [id, status] of outcomes) {
    if (status === 'failed') continue;
    answered++;
    const line = lines.find((l) => l.request_id === id);
    assert.ok(line, `the request ${id} answered ${status} has no audit line`);
    assert.equal(line.status, status, `the line of ${id} says the status it was answered with`);
  }
  assert.ok(answered >= 30, `the requests answered before the shutdown are counted (${answered})`);
}

describe('audit lines across a SIGTERM under load (real mcpgate serve)', () => {
  for (const output of ['file', 'stdout'] as const) {
    it(`${output}: every answered request has exactly one line, the in-flight ones included`, async () => {
      const file = join(dir, `load-${output}.log`);
      const gw = await serve(`load-${output}`, output === 'file' ? file : 'stdout');
      const traffic = load(gw.url, 16);
      // Let the load run (30 requests answered, however loaded the machine), then signal while
      // requests (slow ones among them) are in flight.
      await waitFor(() => traffic.outcomes.size >= 30 || undefined, 20_000, '30 answered requests');
      gw.child.kill('SIGTERM');
      assert.equal(await gw.exited(), 0, gw.stderr());
      await traffic.stop();
      const text = output === 'file' ? await readFile(file, 'utf8') : gw.stdout();
      assertOneLineEach(parse(text), traffic.outcomes);
      assert.doesNotMatch(gw.stderr(), /audit write failed|audit line dropped/);
    });
  }
});

describe('audit outputs that are not a plain file (real mcpgate serve)', () => {
  it('/dev/null: requests are served and the gateway stops cleanly', async () => {
    const gw = await serve('devnull', '/dev/null');
    assert.equal(await call(gw.url, randomUUID(), 1, 0), 200);
    assert.equal(await gw.stop('SIGTERM'), 0);
    assert.doesNotMatch(gw.stderr(), /audit write failed/);
  });

  it('/dev/full (every write fails, as on a full disk): keeps serving, says so once, stops cleanly', async (t) => {
    if (!existsSync('/dev/full')) return t.skip('no /dev/full on this system');
    const gw = await serve('devfull', '/dev/full');
    for (let i = 0; i < 3; i++) {
      assert.equal(await call(gw.url, randomUUID(), i, 0), 200);
      await new Promise((r) => setTimeout(r, 30)); // a batch per request: one failed write each
    }
    const started = Date.now();
    assert.equal(await gw.stop('SIGTERM'), 0, gw.stderr());
    assert.ok(Date.now() - started < 3000, `stopped in ${Date.now() - started} ms`);
    const failures = gw
      .stderr()
      .split('\n')
      .filter((l) => l.includes('audit write failed'));
    assert.equal(failures.length, 1, gw.stderr());
    assert.match(failures[0]!, /"code":"ENOSPC"/);
  });
});

describe('a reload that changes the audit output (real mcpgate serve)', () => {
  it('SIGHUP: says the change needs a restart, and the lines keep going to the running output', async () => {
    const first = join(dir, 'reload-first.log');
    const second = join(dir, 'reload-second.log');
    const gw = await serve('reload', first);
    const before = randomUUID();
    assert.equal(await call(gw.url, before, 1, 0), 200);
    await writeFile(join(dir, 'reload.yaml'), configText(second, '5s'));
    gw.child.kill('SIGHUP');
    await waitFor(() => /config reloaded/.test(gw.stderr()) || undefined, 5000, 'the reload');
    assert.match(gw.stderr(), /"path":"audit[^"]*".*applies only after a restart/);
    const afterReload = randomUUID();
    assert.equal(await call(gw.url, afterReload, 2, 0), 200);
    assert.equal(await gw.stop('SIGTERM'), 0);
    assert.deepEqual(
      parse(await readFile(first, 'utf8')).map((l) => l.request_id),
      [before, afterReload],
    );
    assert.equal(existsSync(second), false);
  });
});

describe('a second signal during the shutdown (real mcpgate serve)', () => {
  let rpcId = 100;
  for (const signals of [
    ['SIGTERM', 'SIGTERM'],
    ['SIGINT', 'SIGINT'],
    ['SIGTERM', 'SIGINT'],
  ] as const) {
    it(`${signals.join(' then ')}: the shutdown goes on, the request in flight gets its line`, async () => {
      const file = join(dir, `twice-${signals.join('-')}.log`);
      const gw = await serve(`twice-${signals.join('-')}`, file);
      const quick = randomUUID();
      assert.equal(await call(gw.url, quick, 1, 0), 200);
      const slow = randomUUID();
      const n = ++rpcId;
      const answer = call(gw.url, slow, n, 600);
      await waitFor(() => upstream.received.find((r) => forwards(r.body, n)), 5000, 'the slow call');
      gw.child.kill(signals[0]);
      await waitFor(() => /shutting down/.test(gw.stderr()) || undefined, 5000, 'the shutdown to begin');
      gw.child.kill(signals[1]);
      assert.equal(await answer, 200);
      assert.equal(await gw.exited(), 0, gw.stderr());
      assert.deepEqual(
        parse(await readFile(file, 'utf8')).map((l) => l.request_id),
        [quick, slow],
      );
    });
  }
});

describe('a SIGHUP right after start (real mcpgate serve)', () => {
  it('the gateway has its handlers before it says it listens: the signal reloads, never kills', async () => {
    // SIGHUP's default action ends the process. The handler used to be installed after the
    // "listening" line, behind an import: 5 of 10 gateways signalled at that line died.
    const path = join(dir, 'hup-early.yaml');
    await writeFile(path, configText(join(dir, 'hup-early.log'), '5s'));
    for (let attempt = 0; attempt < 5; attempt++) {
      const child = spawn(process.execPath, [BIN, 'serve', '--config', path], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const exited = new Promise<string>((r) => child.once('exit', (code, signal) => r(`${code}/${signal}`)));
      let err = '';
      let sent = false;
      await new Promise<void>((resolve) =>
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
          if (!sent && /listening on/.test(err)) {
            sent = true;
            child.kill('SIGHUP');
            resolve();
          }
        }),
      );
      await waitFor(
        () =>
          /config reloaded/.test(err) || child.exitCode !== null || child.signalCode !== null || undefined,
        10_000,
        'the reload',
      );
      assert.equal(child.signalCode, null, `attempt ${attempt}: killed by ${child.signalCode}`);
      assert.match(err, /config reloaded/);
      child.kill('SIGTERM');
      assert.equal(await exited, '0/null');
    }
  });
});
