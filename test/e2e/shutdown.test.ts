/** Graceful shutdown of the real `mcpgate serve` process. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startServe } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';
import { forwards } from '../helpers/tags.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

describe('SIGTERM', () => {
  let upstream: SdkUpstream;
  let dir: string;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-shutdown-'));
  });
  after(async () => upstream.close());

  async function serve(grace: string) {
    const path = join(dir, `${grace}.yaml`);
    await writeFile(
      path,
      `listen: 127.0.0.1:0\nupstream:\n  url: ${upstream.url}\nauth:\n  allow_unauthenticated: true\nshutdown:\n  grace: ${grace}\n`,
    );
    return startServe(['--config', path, '--log-level', 'info']);
  }

  it('lets a request in flight complete, refuses new ones, and exits 0', async () => {
    const gw = await serve('5s');
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'slow', arguments: { ms: 600 } },
    });
    const inflight = fetch(gw.url, { method: 'POST', headers: HEADERS, body });
    await waitFor(
      () => upstream.received.find((r) => forwards(r.body, 7)),
      3000,
      'the call to reach the upstream',
    );
    gw.child.kill('SIGTERM');
    await waitFor(() => /shutting down/.test(gw.stderr()) || undefined, 3000, 'shutdown to begin');
    const late = await fetch(gw.url, {
      method: 'POST',
      headers: HEADERS,
      body: body.replace('"id":7', '"id":70'),
    }).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.ok(late === 503 || late === 'refused', `a new request during shutdown got ${late}`);
    assert.ok(!upstream.received.some((r) => forwards(r.body, 70)));
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { result: { content: unknown } }).result.content, [
      { type: 'text', text: 'slow done' },
    ]);
    assert.equal(await gw.exited(), 0);
    assert.match(gw.stderr(), /shutting down/);
  });

  it('hole: failed before: a request its upstream has not answered when the grace ends gets 503 and its id, not a cut, and the process still exits 0', async () => {
    const gw = await serve('200ms');
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 8,
      method: 'tools/call',
      params: { name: 'slow', arguments: { ms: 5000 } },
    });
    const inflight = fetch(gw.url, { method: 'POST', headers: HEADERS, body }).then(
      async (r) => ({ status: r.status, body: await r.json() }),
      () => 'cut',
    );
    await waitFor(
      () => upstream.received.find((r) => forwards(r.body, 8)),
      3000,
      'the call to reach the upstream',
    );
    const started = Date.now();
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited(), 0);
    assert.ok(Date.now() - started < 3000);
    // failed before: cut bare (a socket hang up). Its upstream had not answered: 503, with its id.
    assert.deepEqual(await inflight, {
      status: 503,
      body: { jsonrpc: '2.0', id: 8, error: { code: -32003, message: 'gateway is shutting down' } },
    });
    const line = auditLines(gw.stdout()).find((l) => l.rpc_id === 8);
    assert.equal(line?.decision, 'deny');
    assert.equal(line?.reason, 'ERR_SHUTTING_DOWN');
  });
});

/** The audit lines a `serve` process wrote to stdout. */
function auditLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => 'decision' in l);
}

describe('SIGTERM with an event stream open when the grace ends', () => {
  let upstream: SdkUpstream;
  let dir: string;
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true });
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-shutdown-sse-'));
  });
  after(async () => upstream.close());

  it('hole: failed before: a POST stream still owed its answer was cut without an error, and its line said allow', async () => {
    const path = join(dir, 'sse.yaml');
    await writeFile(
      path,
      `listen: 127.0.0.1:0\nupstream:\n  url: ${upstream.url}\nauth:\n  allow_unauthenticated: true\nshutdown:\n  grace: 200ms\n`,
    );
    const gw = await startServe(['--config', path, '--log-level', 'info']);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 9,
      method: 'tools/call',
      params: { name: 'progress', arguments: { steps: 50, delayMs: 100 }, _meta: { progressToken: 'p' } },
    });
    const res = await fetch(gw.url, { method: 'POST', headers: HEADERS, body });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = res.text().catch(() => 'cut');
    await waitFor(() => upstream.received.find((r) => forwards(r.body, 9)), 3000, 'the call upstream');
    await new Promise((r) => setTimeout(r, 150));
    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited(), 0);
    const got = await text;
    // Its progress events, then the error owed to its request, and the stream's end.
    assert.match(got, /"method":"notifications\/progress"/);
    assert.ok(
      got.endsWith(
        'data: {"jsonrpc":"2.0","id":9,"error":{"code":-32003,"message":"gateway is shutting down"}}\n\n',
      ),
      got,
    );
    // Its line, written before the process exited: not `allow`, and why.
    const line = auditLines(gw.stdout()).find((l) => l.rpc_id === 9);
    assert.equal(line?.decision, 'deny');
    assert.equal(line?.reason, 'ERR_SHUTTING_DOWN');
    assert.equal(line?.status, 200);
  });
});
