/** Reading a POST body: whole, refused past the cap, given up when the client leaves; the budget always comes back. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createReadBody } from '../../../src/pipeline/read-body.ts';
import { BufferBudget } from '../../../src/proxy/body-buffer.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

async function serve(max: number, sweep?: { add(bytes: number): void }) {
  const budget = new BufferBudget(1 << 20);
  const readBody = createReadBody(max, budget, sweep);
  const outcomes: { bytes?: string; code?: string; usedWhileOpen: number }[] = [];
  const closed: Promise<void>[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    closed.push(once(res, 'close').then(() => undefined));
    readBody(req, res).then(
      (bytes) => {
        outcomes.push({ bytes: bytes.toString(), usedWhileOpen: budget.used });
        res.end('ok');
      },
      (err: unknown) => {
        outcomes.push({ code: isGatewayError(err) ? err.code : String(err), usedWhileOpen: budget.used });
        res.destroy();
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    budget,
    outcomes,
    closed,
    port,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** POSTs `{"a":1}` in two chunks 20 ms apart and waits for the whole answer. */
async function postInTwoChunks(port: number): Promise<void> {
  const req = request({ port, method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
  req.write('{"a":');
  await new Promise((r) => setTimeout(r, 20));
  req.end('1}');
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.resume();
  await once(res, 'end');
}

it('reads a body in chunks, holds it while the response is open, and gives the budget back on close', async () => {
  const s = await serve(1024);
  await postInTwoChunks(s.port);
  await Promise.all(s.closed);
  assert.equal(s.outcomes[0]?.bytes, '{"a":1}');
  assert.ok(s.outcomes[0]!.usedWhileOpen > 0, 'reserved while the response is open');
  assert.equal(s.budget.used, 0);
  s.close();
});

it('refuses a body that grows past the cap (413), and one whose client leaves halfway; nothing stays reserved', async () => {
  const s = await serve(64);
  const big = request({ port: s.port, method: 'POST', headers: { 'transfer-encoding': 'chunked' } });
  big.on('error', () => {});
  big.write('x'.repeat(40));
  big.write('y'.repeat(40));
  const gone = connect(s.port, '127.0.0.1');
  gone.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"partial":');
  await new Promise((r) => setTimeout(r, 50));
  gone.destroy();
  while (s.outcomes.length < 2) await new Promise((r) => setTimeout(r, 10));
  await Promise.all(s.closed);
  big.destroy();
  assert.deepEqual(s.outcomes.map((o) => o.code).sort(), ['ERR_BODY_TOO_LARGE', 'ERR_CLIENT_ABORTED']);
  assert.equal(s.budget.used, 0);
  s.close();
});

it('tells the young sweep the size of every chunk it reads', async () => {
  const told: number[] = [];
  const s = await serve(1024, { add: (n) => void told.push(n) });
  try {
    await postInTwoChunks(s.port);
    await Promise.all(s.closed);
    assert.equal(s.outcomes[0]?.bytes, '{"a":1}');
    assert.ok(told.length >= 2, `chunks told: ${told.join(',')}`);
    assert.equal(
      told.reduce((a, b) => a + b, 0),
      7,
    );
  } finally {
    s.close();
  }
});
