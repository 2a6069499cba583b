/** What a POST's messages cost beyond the token it prepaid (pipeline/rate-limit.ts afterPrepaid). */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { afterPrepaid } from '../../../src/pipeline/rate-limit.ts';
import { compileLimits } from '../../../src/ratelimit/policy.ts';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';

const limits = compileLimits(
  'key:k',
  { capacity: 5, refill_per_second: 1, max_streams: 1 },
  { tools: { slow: { capacity: 2, refill_per_second: 1 } } },
);
const call = (name: string, id: number) =>
  ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name } }) as unknown as JsonRpcMessage;
const costs = (plan: ReturnType<typeof afterPrepaid>) =>
  plan === undefined
    ? undefined
    : plan.buckets.map((b, i) => [b.name, typeof plan.costs === 'number' ? plan.costs : plan.costs[i]]);

it('one message on the key bucket alone costs nothing more: no second call to the store', () => {
  assert.equal(afterPrepaid(limits.planMessages([call('echo', 1)])), undefined);
});

it('a tool bucket keeps the key bucket beside it at no cost; a batch costs one less on the key', () => {
  assert.deepEqual(costs(afterPrepaid(limits.planMessages([call('slow', 1)]))), [
    ['default', 0],
    ['tool:slow', 1],
  ]);
  assert.deepEqual(costs(afterPrepaid(limits.planMessages([call('echo', 1), call('echo', 2)]))), [
    ['default', 1],
  ]);
  assert.deepEqual(costs(afterPrepaid(limits.planMessages([call('slow', 1), call('echo', 2)]))), [
    ['default', 1],
    ['tool:slow', 1],
  ]);
});

it('a plan that can never fit is asked whole, so the store refuses it as too large', () => {
  const batch = Array.from({ length: 6 }, (_, i) => call('echo', i));
  const plan = limits.planMessages(batch);
  assert.equal(afterPrepaid(plan), plan);
  const tools = [call('slow', 1), call('slow', 2), call('slow', 3)];
  const toolPlan = limits.planMessages(tools);
  assert.equal(afterPrepaid(toolPlan), toolPlan);
});
