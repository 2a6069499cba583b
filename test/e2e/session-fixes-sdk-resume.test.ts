/**
 * Review of a090bd0 (sealed SSE event ids): the official SDK client's resumption through the
 * gateway, in front of @modelcontextprotocol/server-everything (streamableHttp, with its event store).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';

const KEY = mintKey(randomBytes(32));

describe('SDK client resumption through the gateway (sealed event ids)', () => {
  let everything: Everything;
  let gateway: TestGateway;
  before(async () => {
    everything = await startEverything('streamableHttp');
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${everything.url}
auth:
  session_secret: "${'r'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(KEY)}"
    allow: ["*"]
`);
  });
  after(async () => {
    await gateway.close(500);
    await everything.close();
  });

  const transportFor = (sessionId?: string) =>
    new StreamableHTTPClientTransport(new URL(gateway.mcpUrl), {
      sessionId,
      requestInit: { headers: { authorization: `Bearer ${KEY}` } },
      reconnectionOptions: {
        maxReconnectionDelay: 200,
        initialReconnectionDelay: 50,
        reconnectionDelayGrowFactor: 1,
        maxRetries: 2,
      },
    });

  it('a second client resumes a tool call with the sealed resumption token and gets its result', async () => {
    const first = new Client({ name: 'a', version: '1' });
    const t1 = transportFor();
    await first.connect(t1);
    const sessionId = t1.sessionId;
    assert.ok(sessionId);
    const tokens: string[] = [];
    const call = first.request(
      {
        method: 'tools/call',
        params: { name: 'trigger-long-running-operation', arguments: { duration: 1.2, steps: 3 } },
      },
      CallToolResultSchema,
      { onresumptiontoken: (t) => void tokens.push(t), onprogress: () => {}, timeout: 10_000 },
    );
    // Wait for the first token (the priming event or a progress event), then drop the first client.
    const start = Date.now();
    while (tokens.length === 0 && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(tokens.length > 0, 'the client saw an event id');
    // The token the client got is the gateway's seal of the upstream's id, not the upstream's own.
    assert.match(tokens[0]!, /^[0-9a-f-]{36}\.[A-Za-z0-9_-]{16}$/);
    call.catch(() => {});
    await t1.close();
    // Let the tool finish upstream (its result goes into the event store).
    await new Promise((r) => setTimeout(r, 1800));
    const second = new Client({ name: 'b', version: '1' });
    const t2 = transportFor(sessionId);
    await second.connect(t2);
    const resumed = await second.request(
      {
        method: 'tools/call',
        params: { name: 'trigger-long-running-operation', arguments: { duration: 1.2, steps: 3 } },
      },
      CallToolResultSchema,
      { resumptionToken: tokens[0], timeout: 5000 },
    );
    assert.match(JSON.stringify(resumed), /Long running operation completed/);
    await second.close();
  });
});
