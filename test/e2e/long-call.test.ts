/**
 * A tool call answered as plain JSON only when it is done (the SDK v2 default without progress)
 * is not cut by `upstream.timeout`: tool calls get `upstream.call_timeout` (10 minutes by default)
 * or their tool's own entry. Here `upstream.timeout` is shortened to 300 ms and the call takes
 * 2.5 s: over eight times the quick-method timeout, as the 35 s call was over the old 30 s.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { DEFAULTS } from '../../src/config/schema.ts';

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
// undici checks timeouts on a coarse timer (about 0.5-1 s late): keep the margins wide.
const SLOW_MS = 2500;

describe('long tool calls through the gateway', () => {
  let upstream: SdkUpstream;
  const gateways: TestGateway[] = [];
  before(async () => {
    upstream = await startSdkUpstream({ stateless: true, jsonResponse: true });
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close(100)));
    await upstream.close();
  });

  async function callSlow(extra: string) {
    const gw = await startTestGateway(
      `listen: 127.0.0.1:0\nupstream:\n  url: ${upstream.url}\n  timeout: 300ms\n${extra}auth:\n  allow_unauthenticated: true\n`,
    );
    gateways.push(gw);
    const res = await fetch(gw.mcpUrl, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 5,
        method: 'tools/call',
        params: { name: 'slow', arguments: { ms: SLOW_MS } },
      }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('the default call_timeout is documented as 10m', () => {
    assert.equal(DEFAULTS.upstreamCallTimeout, '10m');
  });

  it('a call longer than upstream.timeout completes with the default call_timeout', async () => {
    const { status, body } = await callSlow('');
    assert.equal(status, 200);
    assert.deepEqual((body.result as { content: unknown }).content, [{ type: 'text', text: 'slow done' }]);
  });

  it('call_timeout cuts it (504), and a per-tool entry lets it finish', async () => {
    const cut = await callSlow('  call_timeout: 200ms\n');
    assert.equal(cut.status, 504);
    assert.equal((cut.body.error as { code: number }).code, -32002);
    const own = await callSlow('  call_timeout: 200ms\n  tool_timeouts:\n    slow: 5s\n');
    assert.equal(own.status, 200);
  });
});
