/**
 * `limits.idle_reclaim` end to end: a real gateway that filtered a list (its memo now holds a copy)
 * gives that memory back once it has been idle for the configured time, and says so in its debug
 * log; with `0s` it keeps it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { parseConfigText } from '../../src/config/load.ts';
import type { Logger } from '../../src/log/types.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';

const secret = mintKey(randomBytes(32));
const config = (idle: string) =>
  JSON.stringify({
    listen: '127.0.0.1:0',
    upstream: { url: 'URL' },
    limits: { idle_reclaim: idle },
    keys: [{ label: 'half', hash: `sha256:${sha256Hex(secret)}`, allow: ['tool_00*'] }],
  });

function recordingLog(): Logger & { debugs: { fields: Record<string, unknown>; msg: string }[] } {
  const debugs: { fields: Record<string, unknown>; msg: string }[] = [];
  const none = () => {};
  return {
    debugs,
    trace: none,
    info: none,
    warn: none,
    error: none,
    fatal: none,
    debug: (fields, msg) => void debugs.push({ fields: fields as Record<string, unknown>, msg: String(msg) }),
  };
}

async function listTools(mcpUrl: string): Promise<number> {
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
      authorization: `Bearer ${secret}`,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
  });
  const body = (await res.json()) as { result: { tools: unknown[] } };
  return body.result.tools.length;
}

describe('idle memory reclaim through a gateway', () => {
  let upstream: SdkUpstream;
  before(async () => {
    upstream = await startSdkUpstream({
      stateless: true,
      jsonResponse: true,
      extraTools: 200,
      pageSize: 1000,
    });
  });
  after(async () => {
    await upstream.close();
  });

  it('the default is 10s', () => {
    const { config: parsed } = parseConfigText('upstream: { url: "http://127.0.0.1:1/mcp" }', {}, Date.now());
    assert.equal(parsed?.limits.idle_reclaim, 10_000);
  });

  it('an idle gateway drops the list memo it filled and logs it', async () => {
    const log = recordingLog();
    const gateway = await startTestGateway(config('200ms').replace('URL', upstream.url), {}, { log });
    try {
      assert.ok((await listTools(gateway.mcpUrl)) >= 10, 'the key sees its tools');
      await listTools(gateway.mcpUrl);
      const deadline = performance.now() + 5000;
      let line: (typeof log.debugs)[number] | undefined;
      while (line === undefined && performance.now() < deadline) {
        await sleep(50);
        line = log.debugs.find((d) => d.msg === 'idle: gave back memory');
      }
      assert.ok(line, 'the gateway gave memory back once idle');
      assert.ok(
        (line.fields.cache_bytes as number) > 10_000,
        `cache bytes ${String(line.fields.cache_bytes)}`,
      );
      // And it still serves afterwards (the memo is empty: the list is scanned again).
      assert.ok((await listTools(gateway.mcpUrl)) >= 10);
    } finally {
      await gateway.close(100);
    }
  });

  it('with 0s it never does', async () => {
    const log = recordingLog();
    const gateway = await startTestGateway(config('0s').replace('URL', upstream.url), {}, { log });
    try {
      await listTools(gateway.mcpUrl);
      await sleep(800);
      assert.equal(log.debugs.filter((d) => d.msg === 'idle: gave back memory').length, 0);
    } finally {
      await gateway.close(100);
    }
  });
});
