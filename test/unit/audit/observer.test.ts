import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createObserver } from '../../../src/audit/observer.ts';
import { createMetrics } from '../../../src/metrics/metrics.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { fakeContext } from './fake-context.ts';

const clock = { now: () => 1_800_000_000_000, mono: () => 1250 };

describe('observer', () => {
  it('hands the clock to the audit log and the metrics, once per finish', async () => {
    const records: [RequestContext, number, number][] = [];
    const metrics = createMetrics({ knownMethods: ['tools/call'], knownTools: ['echo'] });
    const observer = createObserver({
      clock,
      audit: { record: (ctx, now, mono) => records.push([ctx, now, mono]), accepting: () => true },
      metrics,
      onError: (err) => assert.fail(String(err)),
    });
    const ctx = fakeContext({
      calls: [{ rpc_method: 'tools/call', rpc_id: 1, tool: 'echo', decision: 'allow' }],
    });
    observer.finish(ctx);
    assert.deepEqual(records, [[ctx, 1_800_000_000_000, 1250]]);
    const body = (await metrics.render()).body;
    assert.match(body, /^mcpgate_requests_total\{decision="allow",rpc_method="tools\/call"\} 1$/m);
    assert.match(body, /^mcpgate_request_duration_seconds_sum\{decision="allow"\} 0\.25$/m);
  });

  it('a failing audit log neither throws nor stops the metrics', async () => {
    const errors: string[] = [];
    const metrics = createMetrics({ knownMethods: [] });
    const observer = createObserver({
      clock,
      audit: {
        record: () => {
          throw new Error('disk on fire');
        },
        accepting: () => true,
      },
      metrics,
      onError: (err, where) => errors.push(`${where}: ${(err as Error).message}`),
    });
    observer.finish(fakeContext());
    assert.deepEqual(errors, ['audit: disk on fire']);
    assert.match(
      (await metrics.render()).body,
      /^mcpgate_requests_total\{decision="allow",rpc_method="none"\} 1$/m,
    );
  });
});
