/**
 * Fail closed on the audit log: while the audit destination takes no lines (a full disk, a reader
 * gone) and enough of them wait for it, no request runs whose line could be lost. Before, the gateway
 * went on serving, and past 64 MiB waiting the lines of requests it had served were dropped.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startCountingUpstream, makeKey, postAs } from '../helpers/counting-upstream.ts';
import type { CountingUpstream } from '../helpers/counting-upstream.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-fail-closed-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 'c-7',
  method: 'tools/call',
  params: { name: 'echo', arguments: {} },
});

describe('the gateway while its audit log takes no lines', () => {
  let upstream: CountingUpstream;
  let gw: TestGateway;
  let accepting = true;
  const key = makeKey('alice', { capacity: 1000, refill_per_second: 1000 });
  before(async () => {
    upstream = await startCountingUpstream();
    gw = await startTestGateway(
      [
        'listen: 127.0.0.1:0',
        `upstream: { url: ${upstream.url} }`,
        'keys:',
        `  - { label: alice, hash: "${key.config.hash}", allow: ["*"] }`,
        '',
      ].join('\n'),
      {},
      { auditAccepting: () => accepting },
    );
  });
  after(async () => {
    await gw.close(100);
    await upstream.close();
  });

  it('failed before: a request is refused (503, its id, Retry-After), never reaches the upstream, and /readyz says why', async () => {
    accepting = false;
    const posts = upstream.counts.posts;
    const lines = gw.auditLines.length;
    const refused = await postAs(`${gw.url}/mcp`, key, CALL);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    const body = JSON.parse(refused.text) as { id: unknown; error: { message: string } };
    assert.equal(body.id, 'c-7');
    assert.equal(body.error.message, 'audit log unavailable: retry shortly');
    assert.equal(upstream.counts.posts, posts, 'the upstream received nothing');
    // Its own line is attempted all the same (a destination that takes it again records it).
    assert.equal(gw.auditLines.length, lines + 1);
    assert.equal(gw.auditLines.at(-1)?.reason, 'ERR_AUDIT_UNAVAILABLE');
    assert.equal(gw.auditLines.at(-1)?.decision, 'deny');

    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'audit log unavailable' });

    accepting = true;
    const served = await postAs(`${gw.url}/mcp`, key, CALL);
    assert.equal(served.status, 200);
    assert.equal(upstream.counts.posts, posts + 1);
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
  });

  it('an unauthenticated request is refused the same way, before its credentials are looked at', async () => {
    accepting = false;
    try {
      const refused = await postAs(`${gw.url}/mcp`, undefined, CALL);
      assert.equal(refused.status, 503);
      assert.equal((JSON.parse(refused.text) as { id: unknown }).id, 'c-7');
    } finally {
      accepting = true;
    }
  });
});

describe('the audit writer on a destination that fails, then takes lines again', () => {
  it('failed before: accepting() turns false once enough lines wait, and true again once they are written, none lost', async () => {
    // A file already at its size limit (ulimit -f): every write fails with EFBIG, as on a full disk,
    // until the file is truncated (the disk freed).
    const file = join(dir, 'full.log');
    await writeFile(file, 'x'.repeat(128 * 1024));
    const writer = new URL('../../src/audit/writer.ts', import.meta.url).href;
    const script = `
      import * as W from ${JSON.stringify(writer)};
      import { truncateSync } from 'node:fs';
      const events = [];
      const w = W.createAuditWriter({
        output: ${JSON.stringify(file)},
        onRefusing: (refusing) => events.push(refusing),
        refuseAtBytes: 16384,
        resumeAtBytes: 8192,
      });
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const seen = [w.accepting()];
      for (let i = 0; i < 24; i++) {
        w.write({ n: i, pad: 'x'.repeat(1000) });
        await sleep(15);
      }
      seen.push(w.accepting(), w.accepting());
      truncateSync(${JSON.stringify(file)}, 0);
      w.write({ n: 'after' });
      await w.flush();
      seen.push(w.accepting());
      await w.close();
      console.error(JSON.stringify({ seen, events }));
    `;
    const child = spawn(
      'sh',
      ['-c', 'ulimit -f 128; exec "$0" "$@"', process.execPath, '--input-type=module', '-e', script],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, err);
    const out = JSON.parse(err.trim().split('\n').at(-1)!) as { seen: boolean[]; events: boolean[] };
    assert.deepEqual(out.seen, [true, false, false, true]);
    assert.deepEqual(out.events, [true, false], 'each change said once');
    const written = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    assert.deepEqual(
      written.map((l) => (JSON.parse(l) as { n: unknown }).n),
      [...Array.from({ length: 24 }, (_, i) => i), 'after'],
    );
  });
});
