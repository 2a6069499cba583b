/**
 * A JSON body a rule must read is held whole against the budget, rewritten, then written: whether
 * it arrives as one chunk of its Content-Length (read in place) or in several (copied into one
 * buffer). It is never written unrewritten, and the budget always comes back.
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ResponseRewrite } from '../../../src/proxy/relay.ts';
import { BufferBudget } from '../../../src/proxy/body-buffer.ts';
import { relayOnce, startOrigin } from '../../helpers/relay-harness.ts';
import type { Origin } from '../../helpers/relay-harness.ts';

const BODY = '{"jsonrpc":"2.0","id":1,"result":{"text":"' + 'x'.repeat(200) + '"}}';
let origin: Origin;

before(async () => {
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
    if (req.url === '/split') {
      res.write(BODY.slice(0, 50));
      setTimeout(() => res.end(BODY.slice(50)), 20);
    } else res.end(BODY);
  });
});
after(() => origin.close());

const upper: ResponseRewrite = {
  json: (body) => Buffer.from(body.toString('utf8').toUpperCase()),
  sse: () => {
    throw new Error('not an SSE test');
  },
};

async function relayed(path: string, budget: BufferBudget) {
  let peak = 0;
  const { text, errors } = await relayOnce(origin, path, upper, budget, () => {
    peak = Math.max(peak, budget.used);
  });
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
