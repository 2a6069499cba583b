/**
 * Final review (7009474..HEAD), regressions for real clients: the official SDK clients through the
 * gateway after the day's new refusals (message-member allowlist, case variants, DELETE charging,
 * sealed event ids). These held when written; they guard what the clients actually send.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startV2Upstream } from '../helpers/v2-upstream.ts';
import type { V2Upstream } from '../helpers/v2-upstream.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));
const config = (url: string) => `listen: 127.0.0.1:0
upstream:
  url: ${url}
auth:
  session_secret: "${'f'.repeat(40)}"
rate_limit:
  capacity: 1000
  refill_per_second: 1000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["*"]
    prompts: ["*"]
    resources: ["*"]
`;

describe('final review: the v1 SDK client, event ids on, through the gateway', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream({ eventIds: true, replay: true });
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(300);
    await upstream.close();
  });

  it('connects, lists, calls with progress, and ends its session with a DELETE', async () => {
    const client = new Client({ name: 'final-review', version: '1' });
    const transport = new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
      requestInit: { headers: { authorization: `Bearer ${KEY}` } },
    });
    await client.connect(transport);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'));
    const progress: number[] = [];
    const tokens: string[] = [];
    const result = await client.callTool({ name: 'progress', arguments: { steps: 2 } }, undefined, {
      onprogress: (p) => void progress.push(p.progress),
      onresumptiontoken: (t) => void tokens.push(t),
    });
    assert.ok(!result.isError, JSON.stringify(result));
    assert.ok(tokens.length > 0 && tokens.every((t) => /\.[A-Za-z0-9_-]{16}$/.test(t)), String(tokens));
    await transport.terminateSession();
    assert.equal(transport.sessionId, undefined);
    await client.close();
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow' && l.decision !== 'aborted');
    assert.deepEqual(refused, []);
    const deletes = gateway.auditLines.filter((l) => l.http_method === 'DELETE');
    assert.equal(deletes.length, 1);
    assert.equal(deletes[0]?.status, 200);
  });
});

describe('final review: the 2.x client (2026-07-28) through the gateway', () => {
  let upstream: V2Upstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startV2Upstream();
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(300);
    await upstream.close();
  });

  it('lists, calls with progress, reads, completes nothing refused', async () => {
    const client = new Client2(
      { name: 'final-review-2', version: '1' },
      { versionNegotiation: { mode: 'auto' } },
    );
    await client.connect(
      new Transport2(new URL(gateway.mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      }),
    );
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === 'echo'));
    const progress: number[] = [];
    const out = await client.callTool(
      { name: 'progress', arguments: { steps: 2, delayMs: 10 } },
      { onprogress: (p) => void progress.push(p.progress) },
    );
    assert.match(JSON.stringify(out), /done after 2 steps/);
    const echoed = await client.callTool({ name: 'echo', arguments: { message: 'grüße' } });
    assert.match(JSON.stringify(echoed), /Echo: grüße/);
    await client.readResource({ uri: 'file:///public/readme.md' });
    await client.getPrompt({ name: 'greeting' });
    await client.close();
    const refused = gateway.auditLines.filter((l) => l.decision !== 'allow' && l.decision !== 'aborted');
    assert.deepEqual(refused, []);
  });
});
