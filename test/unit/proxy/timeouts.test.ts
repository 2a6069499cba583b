/** Which headers timeout a request gets: quick methods, tool calls, per-tool overrides, batches. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileTimeouts } from '../../../src/proxy/timeouts.ts';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';

const call = (name: string, id = 1) =>
  ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name } }) as JsonRpcMessage;
const list = { jsonrpc: '2.0', id: 9, method: 'tools/list' } as JsonRpcMessage;

describe('headers timeouts', () => {
  const timeoutFor = compileTimeouts({
    timeout: 30_000,
    call_timeout: 600_000,
    tool_timeouts: { build: 3_600_000, 'quick_*': 5_000, quick_exact: 7_000 },
  });
  it('quick methods and GET streams get upstream.timeout', () => {
    assert.equal(timeoutFor([list]), 30_000);
    assert.equal(timeoutFor(undefined), 30_000);
  });
  it('a tool call gets call_timeout, or its own entry (exact names before wildcards)', () => {
    assert.equal(timeoutFor([call('search')]), 600_000);
    assert.equal(timeoutFor([call('build')]), 3_600_000);
    assert.equal(timeoutFor([call('quick_one')]), 5_000);
    assert.equal(timeoutFor([call('quick_exact')]), 7_000);
    assert.equal(
      timeoutFor([
        { jsonrpc: '2.0', id: 2, method: 'tasks/result', params: { taskId: 't' } } as JsonRpcMessage,
      ]),
      600_000,
    );
  });
  it('a batch waits for its slowest member', () => {
    assert.equal(timeoutFor([call('quick_one'), list]), 30_000);
    assert.equal(timeoutFor([call('quick_one'), call('build', 2)]), 3_600_000);
  });
});
