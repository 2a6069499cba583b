/**
 * A JSON body a rule must read is held whole against the budget, rewritten, then written: whether
 * it arrives as one chunk of its Content-Length (read in place) or in several (copied into one
 * buffer). It is never written unrewritten, and the budget always comes back.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Relay } from '../../../src/proxy/relay.ts';
import type { ResponseRewrite } from '../../../src/proxy/relay.ts';
import { BufferBudget } from '../../../src/proxy/body-buffer.ts';
import { createResponseHead } from '../../../src/proxy/response-headers.ts';
import { KeepaliveWheel } from '../../../src/proxy/keepalive.ts';

const BODY = '{"jsonrpc":"2.0","id":1,"result":{"text":"' + 'x'.repeat(200) + '"}}';
let origin: Server;
let pool: Pool;
const keepalive = new KeepaliveWheel(1000);

before(async () => {
  origin = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
    if (req.url === '/split') {
      res.write(BODY.slice(0, 50));
      setTimeout(() => res.end(BODY.slice(50)), 20);
    } else res.end(BODY);
  });
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  pool = new Pool(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`);
});
after(async () => {
  await pool.close();
  origin.close();
});

const upper: ResponseRewrite = {
  json: (body) => Buffer.from(body.toString('utf8').toUpperCase()),
  sse: () => {
    throw new Error('not an SSE test');
  },
};

async function relayed(path: string, budget: BufferBudget) {
  const head = createResponseHead({ pass: [], warn: () => {}, now: () => 0 });
  const errors: (Error | undefined)[] = [];
  let peak = 0;
  const gateway = createServer((_req, res) => {
    const relay = new Relay(res, { keepalive, head, budget }, upper, {
      onStart: () => {},
      onBytes: () => {
        peak = Math.max(peak, budget.used);
      },
      onDone: (error) => {
        errors.push(error);
        if (error !== undefined) res.destroy();
      },
    });
    pool.dispatch({ path, method: 'GET', headers: [] }, relay);
  });
  gateway.listen(0, '127.0.0.1');
  await once(gateway, 'listening');
  const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/`;
  let text: string | undefined;
  try {
    text = await (await fetch(url)).text();
  } catch {
    text = undefined;
  }
  gateway.close();
  return { text, errors, peak };
}

it('rewrites a body that came as one chunk, holding it against the budget until the end', async () => {
  const budget = new BufferBudget(1 << 20);
  const { text, errors, peak } = await relayed('/whole', budget);
  assert.equal(text, BODY.toUpperCase());
  assert.deepEqual(errors, [undefined]);
  assert.equal(peak, Buffer.byteLength(BODY), 'the chunk was reserved while it was held');
  assert.equal(budget.used, 0);
});

it('rewrites a body that came in two chunks the same way', async () => {
  const budget = new BufferBudget(1 << 20);
  const { text, errors } = await relayed('/split', budget);
  assert.equal(text, BODY.toUpperCase());
  assert.deepEqual(errors, [undefined]);
  assert.equal(budget.used, 0);
});

it('refuses a body the budget cannot hold, one chunk or two, and writes none of it', async () => {
  for (const path of ['/whole', '/split']) {
    const budget = new BufferBudget(100);
    const { text, errors } = await relayed(path, budget);
    assert.equal(text, undefined, `${path}: the client got nothing`);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]?.message), /holds too many bodies/);
    assert.equal(budget.used, 0);
  }
});
