/**
 * Issue 12: memory proportional to bytes, with a ceiling. An upstream answers several concurrent
 * tools/list requests (which the gateway must hold whole to filter) in tiny chunks. Held as one
 * Buffer per chunk, that multiplied the gateway's heap far beyond the bytes and killed the process
 * ("JavaScript heap out of memory"), losing every in-flight audit line. Now each held body is one
 * buffer counted in `limits.max_buffered_bytes` (default: a quarter of the heap limit): the lists
 * that do not fit are refused with 502, and the gateway, a real `mcpgate serve` with a small heap,
 * lives and writes every audit line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startServe } from '../helpers/cli.ts';
import type { ServeProcess } from '../helpers/cli.ts';

const LISTS = 12;
const PIECE = 16;
const TOOLS = 9_000; // about 1.9 MiB per list

function listBody(id: unknown): Buffer {
  const tools: string[] = [];
  for (let i = 0; i < TOOLS; i++) {
    tools.push(
      JSON.stringify({
        name: `tool-${i}`,
        description: `Tool number ${i}. ${'d'.repeat(120)}`,
        inputSchema: { type: 'object', properties: {} },
      }),
    );
  }
  return Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[${tools.join(',')}]}}`);
}

/** An upstream that waits until every list request has arrived, then answers all of them at once, 16 bytes a chunk. */
function startTinyChunkUpstream(): Promise<Server> {
  const waiting: { res: ServerResponse; body: Buffer }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (text += d));
    req.on('end', () => {
      const message = JSON.parse(text) as { id?: unknown; method?: string };
      if (message.method !== 'tools/list') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: {} }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.on('error', () => {});
      waiting.push({ res, body: listBody(message.id) });
      if (waiting.length === LISTS) void sendAll(waiting.splice(0));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function sendAll(answers: { res: ServerResponse; body: Buffer }[]): Promise<void> {
  const offsets = answers.map(() => 0);
  for (let open = answers.length; open > 0;) {
    open = 0;
    answers.forEach(({ res, body }, i) => {
      if (res.destroyed || (offsets[i] as number) >= body.length) return;
      open++;
      res.cork();
      for (let k = 0; k < 256 && (offsets[i] as number) < body.length; k++) {
        const at = offsets[i] as number;
        res.write(body.subarray(at, at + PIECE));
        offsets[i] = at + PIECE;
      }
      res.uncork();
      if ((offsets[i] as number) >= body.length) res.end();
    });
    await new Promise((r) => setImmediate(r));
  }
}

describe('memory: many-small-chunks lists under a small heap (real mcpgate serve)', () => {
  const secret = mintKey(randomBytes(32));
  let dir: string;
  let upstream: Server;
  let gw: ServeProcess;

  before(async () => {
    upstream = await startTinyChunkUpstream();
    const port = (upstream.address() as AddressInfo).port;
    dir = await mkdtemp(join(tmpdir(), 'mcpgate-memory-'));
    const configPath = join(dir, 'mcpgate.yaml');
    await writeFile(
      configPath,
      JSON.stringify({
        listen: '127.0.0.1:0',
        upstream: { url: `http://127.0.0.1:${port}/mcp` },
        keys: [{ label: 'lister', hash: `sha256:${sha256Hex(secret)}`, allow: ['tool-1'] }],
      }),
    );
    // A heap limit of about 70 MiB: default max_buffered_bytes is then 17 MiB, less than the lists.
    gw = await startServe(['--config', configPath], {
      NODE_OPTIONS: '--max-old-space-size=64 --max-semi-space-size=2',
    });
  });
  after(async () => {
    await gw?.stop('SIGKILL');
    await new Promise((r) => upstream?.close(r));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses the lists that do not fit with 502, filters the rest, lives, and audits every request', async () => {
    const post = (id: number, method: string) =>
      fetch(gw.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${secret}`,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params: {} }),
      });
    const answers = await Promise.all(
      Array.from({ length: LISTS }, async (_, i) => {
        const res = await post(i + 1, 'tools/list');
        return { id: i + 1, status: res.status, body: (await res.json()) as Record<string, unknown> };
      }),
    );
    assert.equal(gw.child.exitCode, null, `the gateway is alive (stderr: ${gw.stderr().slice(-300)})`);
    const refused = answers.filter((a) => a.status === 502);
    const filtered = answers.filter((a) => a.status === 200);
    assert.equal(refused.length + filtered.length, LISTS, JSON.stringify(answers.slice(0, 2)));
    assert.ok(refused.length > 0, 'some lists did not fit in the budget');
    assert.ok(filtered.length > 0, 'the lists that fit were filtered');
    for (const a of refused) {
      assert.deepEqual(a.body, {
        jsonrpc: '2.0',
        id: a.id,
        error: { code: -32603, message: 'a list response cannot be held: the gateway holds too many bodies' },
      });
    }
    for (const a of filtered) {
      const tools = (a.body.result as { tools: { name: string }[] }).tools;
      assert.deepEqual(
        tools.map((t) => t.name),
        ['tool-1'],
      );
    }
    // Still serving.
    assert.equal((await fetch(`${new URL(gw.url).origin}/healthz`)).status, 200);
    const ping = await post(99, 'ping');
    assert.equal(ping.status, 200);
    await ping.text();
    // One audit line per request, each whole, with the truth about the refusals.
    let lines: Record<string, unknown>[] = [];
    for (let i = 0; i < 100 && lines.length < LISTS + 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      lines = gw
        .stdout()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    }
    assert.equal(lines.length, LISTS + 1);
    const overloaded = lines.filter((l) => l.reason === 'ERR_OVERLOADED');
    assert.equal(overloaded.length, refused.length);
    for (const l of overloaded) {
      assert.equal(l.decision, 'upstream_error');
      assert.equal(l.status, 502);
    }
    assert.equal(lines.filter((l) => l.decision === 'allow' && l.status === 200).length, filtered.length + 1);
  });
});
