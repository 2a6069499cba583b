/**
 * The bench's load must look like one kind of client: the same headers in the same order on every
 * wrk run (Node gives `req.headers` a hidden class per order, and a new one deoptimizes the
 * gateway's header-reading code in the middle of a measured round). `--header-orders N` asks for N
 * kinds on purpose, each a fixed permutation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadGenerator } from '../../bench/load.ts';
import { headerOrder } from '../../bench/header-order.ts';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
  authorization: 'Bearer mcpg_x',
  'mcp-session-id': 's-1',
};

test('headerOrder: order 0 as given, each other order a fixed permutation of the same headers', () => {
  assert.deepEqual(Object.keys(headerOrder(HEADERS, 0)), Object.keys(HEADERS));
  const seen = new Set<string>();
  for (let order = 0; order < 6; order++) {
    const h = headerOrder(HEADERS, order);
    assert.deepEqual({ ...h }, HEADERS, `order ${order} changed a header`);
    assert.deepEqual(Object.keys(headerOrder(HEADERS, order)), Object.keys(h), `order ${order} moved`);
    seen.add(Object.keys(h).join(','));
  }
  assert.equal(seen.size, 6, 'orders 0-5 are not six different orders');
});

// The bench's own detection: loadGenerator(dir, 'wrk') refuses when wrk does not run here.
const hasWrk = await loadGenerator(tmpdir(), 'wrk').then(
  () => true,
  () => false,
);

test(
  'wrk sends the headers in the order given, the same on every run, with the whole body',
  { skip: hasWrk ? false : 'wrk is not installed (the bench falls back to autocannon)' },
  async () => {
    const orders = new Set<string>();
    const bodies = new Set<string>();
    const server = createServer((req, res) => {
      const names = req.rawHeaders.filter((_, i) => i % 2 === 0);
      orders.add(names.join(','));
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        bodies.add(`${req.headers['content-length']}:${body}`);
        res.end('{}');
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const dir = mkdtempSync(join(tmpdir(), 'bench-load-'));
    try {
      const load = await loadGenerator(dir, 'wrk');
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
      const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
      for (let run = 0; run < 3; run++) {
        const r = await load.run({ url, body, headers: HEADERS, connections: 2, seconds: 1 });
        assert.ok(r.requests > 0 && r.errors === 0, `run ${run}: ${JSON.stringify(r)}`);
      }
      assert.deepEqual(
        [...orders],
        [['Host', ...Object.keys(HEADERS), 'Content-Length'].join(',')],
        'the header order changed between runs or is not the one given',
      );
      assert.deepEqual([...bodies], [`${Buffer.byteLength(body)}:${body}`]);
    } finally {
      server.close();
      server.closeAllConnections();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
