/**
 * bench/minimal-gateway.ts is a yardstick for issue 14 (the promised work done the shortest way):
 * its figures mean something only while it does that work. It refuses a request without the key
 * (or with a wrong one), forwards a keyed one with its id replaced by a tag and gives the client its
 * own id back, and writes one audit line per forwarded request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keygen, startMinimalGateway, startOrigin } from '../../bench/processes.ts';

const BIN = fileURLToPath(new URL('../../bin/mcpgate.js', import.meta.url));

test('the minimal gateway does the promised work it is measured for', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'minimal-gateway-'));
  const origin = await startOrigin(dir, 10);
  try {
    const key = await keygen(BIN, 'bench');
    const audit = join(dir, 'audit.log');
    const gw = await startMinimalGateway(
      dir,
      `http://127.0.0.1:${origin.port}/mcp`,
      key.hash.replace(/^sha256:/, ''),
      audit,
    );
    try {
      const post = async (body: string, bearer?: string) => {
        const res = await fetch(`http://127.0.0.1:${gw.port}/mcp`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
          },
          body,
        });
        return { status: res.status, body: (await res.json()) as { id: unknown; result?: unknown } };
      };
      const call =
        '{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"tool_1","arguments":{}}}';
      assert.equal((await post(call)).status, 401);
      // Another last character (a key that already ends in x would be itself: 1 run in 62).
      const wrong = `${key.key.slice(0, -1)}${key.key.endsWith('x') ? 'y' : 'x'}`;
      assert.equal((await post(call, wrong)).status, 401);
      const ok = await post(call, key.key);
      assert.equal(ok.status, 200);
      assert.equal(ok.body.id, 'c-1');
      assert.deepEqual(ok.body.result, { content: [{ type: 'text', text: 'ok' }] });
      const numbered = await post('{"jsonrpc":"2.0","id":42,"method":"ping"}', key.key);
      assert.equal(numbered.body.id, 42);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const lines = readFileSync(audit, 'utf8').trim().split('\n');
      assert.equal(lines.length, 2);
      const first = JSON.parse(lines[0]!) as Record<string, unknown>;
      assert.equal(first.tool, 'tool_1');
      assert.equal(first.rpc_id, 'c-1');
      assert.equal(first.key, 'bench');
    } finally {
      await gw.stop();
    }
  } finally {
    await origin.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
