/**
 * Issue 15: the older HTTP+SSE transport (2024-11-05), end to end. server-everything runs in `sse`
 * mode behind a recording forwarder (what the upstream was sent); the client is the SDK's
 * SSEClientTransport, or raw HTTP for the session attacks. Every refusal is checked from both sides:
 * the client's answer, and that nothing of it reached the upstream.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { startRecorder } from '../helpers/recorder.ts';
import type { Recorder } from '../helpers/recorder.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { openStream } from '../helpers/sse-stream.ts';

const ALICE = mintKey(randomBytes(32));
const BOB = mintKey(randomBytes(32));

async function connect(url: string, key: string): Promise<{ client: Client; transport: SSEClientTransport }> {
  const client = new Client({ name: 'sse-e2e', version: '1.0.0' });
  const transport = new SSEClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

const initialize = (id: number) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
  });

function post(url: string, key: string, body: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });
}

describe('HTTP+SSE transport (server-everything in sse mode)', () => {
  let everything: Everything;
  let recorder: Recorder;
  let gateway: TestGateway;

  before(async () => {
    everything = await startEverything('sse');
    recorder = await startRecorder(everything.url);
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${recorder.url}
  transport: sse
auth:
  session_secret: "${'e'.repeat(40)}"
rate_limit:
  capacity: 100000
  refill_per_second: 100000
keys:
  - label: alice
    hash: "sha256:${sha256Hex(ALICE)}"
    allow: [echo, get-sum]
  - label: bob
    hash: "sha256:${sha256Hex(BOB)}"
    allow: [echo]
`);
  });
  after(async () => {
    await gateway.close(200);
    await recorder.close();
    await everything.close();
  });

  it('serves the SDK SSE client: a filtered tools/list, allowed calls work', async () => {
    const { client } = await connect(gateway.mcpUrl, ALICE);
    try {
      const { tools } = await client.listTools();
      assert.deepEqual(tools.map((t) => t.name).sort(), ['echo', 'get-sum']);
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'over sse' } });
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: over sse' }]);
      const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
      assert.match(JSON.stringify(sum.content), /5/);
    } finally {
      await client.close();
    }
    // The upstream did list everything: the gateway filtered it on the GET stream.
    const upstreamList = recorder.received.find(
      (r) => r.method === 'GET' && r.response.includes('"get-env"'),
    );
    assert.ok(upstreamList, 'the upstream sent its whole list on the GET stream');
  });

  it('answers a denied call on the stream; the call never reaches the upstream', async () => {
    const { client } = await connect(gateway.mcpUrl, BOB);
    try {
      await assert.rejects(
        client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }),
        (err: unknown) => err instanceof McpError && err.code === -32602 && /get-sum/.test(err.message),
      );
      // The session still works after the denial.
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'still here' } });
      assert.deepEqual(echoed.content, [{ type: 'text', text: 'Echo: still here' }]);
    } finally {
      await client.close();
    }
    const sums = recorder.messages().filter((m) => m.method === 'tools/call' && m.params?.name === 'get-sum');
    // Only alice's call (previous test) reached it.
    assert.equal(sums.length, 1);
    const denied = await waitFor(
      () => gateway.auditLines.find((l) => l.key === 'bob' && l.tool === 'get-sum'),
      2000,
      "bob's denied call in the audit log",
    );
    assert.equal(denied.decision, 'deny');
    assert.equal(denied.reason, 'ERR_TOOL_DENIED');
    assert.equal(denied.status, 202);
  });

  it("rewrites the endpoint event: the client POSTs to the gateway and never learns the upstream's address", async () => {
    const stream = await openStream(gateway.mcpUrl, ALICE);
    try {
      const endpoint = await stream.next();
      assert.equal(endpoint.event, 'endpoint');
      // `~`, then the sealed endpoint (iv, ciphertext, tag), then the MAC.
      assert.match(endpoint.data, /^\/sse\?session=~[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
      assert.ok(!endpoint.data.includes('message'), 'not the upstream path');
      assert.ok(!endpoint.data.includes(new URL(recorder.url).port), 'not the upstream port');
      const upstreamGet = recorder.received.findLast((r) => r.method === 'GET')!;
      const upstreamSession = /sessionId=([0-9a-f-]+)/.exec(upstreamGet.response)![1]!;
      assert.ok(!endpoint.data.includes(upstreamSession), "not the upstream's session id in clear");
      const sealed = endpoint.data.slice(endpoint.data.indexOf('~') + 1, endpoint.data.lastIndexOf('.'));
      for (let i = 0; i < 4; i++) {
        const decoded = Buffer.from(sealed.slice(i), 'base64url').toString('latin1');
        assert.ok(!decoded.includes(upstreamSession) && !decoded.includes('message'), 'nor in base64url');
      }
    } finally {
      stream.close();
    }
  });

  it('refuses a session stolen by another key: 404, and nothing reaches the upstream', async () => {
    const stream = await openStream(gateway.mcpUrl, ALICE);
    try {
      const { data: endpoint } = await stream.next();
      const url = new URL(endpoint, gateway.url).href;
      const before = recorder.received.length;
      const stolen = await post(url, BOB, initialize(1));
      assert.equal(stolen.status, 404);
      const body = (await stolen.json()) as { id: unknown; error: { code: number } };
      assert.equal(body.error.code, -32004);
      assert.equal(recorder.received.length, before, 'the stolen POST never reached the upstream');
      // The owner's POST goes through, and its answer arrives on the stream.
      const own = await post(url, ALICE, initialize(1));
      assert.equal(own.status, 202);
      const answer = await stream.next();
      assert.equal(answer.event, 'message');
      assert.equal((JSON.parse(answer.data) as { id: number }).id, 1);
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.key === 'bob' && l.reason === 'ERR_SESSION_NOT_FOUND'),
        2000,
        'the refusal in the audit log',
      );
      assert.equal(line.status, 404);
      assert.equal(line.decision, 'deny');
    } finally {
      stream.close();
    }
  });

  it('refuses forged, tampered and missing sessions before the upstream', async () => {
    const stream = await openStream(gateway.mcpUrl, ALICE);
    try {
      const { data: endpoint } = await stream.next();
      const session = new URL(endpoint, gateway.url).searchParams.get('session')!;
      const [encoded, mac] = session.split('.') as [string, string];
      const otherPath = Buffer.from('/message?sessionId=00000000-0000-0000-0000-000000000000').toString(
        'base64url',
      );
      const before = recorder.received.length;
      const attempts = [
        `${gateway.mcpUrl}?session=${otherPath}.${mac}`,
        `${gateway.mcpUrl}?session=${encoded}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`,
        `${gateway.mcpUrl}?session=${encoded}`,
        `${gateway.mcpUrl}?session=${session}&session=${session}`,
        gateway.mcpUrl,
      ];
      for (const url of attempts) {
        const res = await post(url, ALICE, initialize(7));
        assert.equal(res.status, 404, url);
        const body = (await res.json()) as { id: unknown; error: { code: number } };
        assert.equal(body.error.code, -32004);
      }
      assert.equal(recorder.received.length, before, 'no forged POST reached the upstream');
    } finally {
      stream.close();
    }
  });

  it("never passes the client's credential to the upstream", async () => {
    const { client } = await connect(gateway.mcpUrl, ALICE);
    await client.listTools();
    await client.close();
    for (const r of recorder.received) {
      assert.equal(r.headers.authorization, undefined);
      assert.equal(r.headers['x-api-key'], undefined);
    }
    const everythingSent = JSON.stringify(recorder.received.map((r) => [r.path, r.headers, r.body]));
    assert.ok(!everythingSent.includes(ALICE) && !everythingSent.includes(BOB), 'no key in any request');
  });

  it('writes one audit line per HTTP request; a GET stream line counts the events it filtered', async () => {
    const before = gateway.finished.length;
    const { client } = await connect(gateway.mcpUrl, BOB);
    await client.listTools();
    await client.close();
    const getLine = await waitFor(
      () =>
        gateway.auditLines.slice(before).find((l) => l.http_method === 'GET' && l.key === 'bob') ?? undefined,
      3000,
      "the GET stream's audit line",
    );
    assert.equal(getLine.decision, 'allow');
    assert.equal(getLine.status, 200);
    assert.ok((getLine.events_filtered as number) >= 1, 'the filtered tools/list counts');
    assert.equal(typeof getLine.session, 'string');
    const ids = gateway.auditLines.map((l) => l.request_id);
    assert.equal(new Set(ids).size, ids.length, 'one line per request id');
    assert.equal(gateway.auditLines.length, gateway.finished.length);
    // initialize, notifications/initialized and tools/list: each POST has its own line. Only bob's:
    // a request of the test before (alice's) can finish, and be written, after `before` was read.
    const posts = gateway.auditLines.slice(before).filter((l) => l.http_method === 'POST' && l.key === 'bob');
    assert.deepEqual(
      posts.map((l) => l.rpc_method),
      ['initialize', 'notifications/initialized', 'tools/list'],
    );
  });
});

describe('HTTP+SSE transport: a rate-limited POST', () => {
  let everything: Everything;
  let gateway: TestGateway;
  const CAROL = mintKey(randomBytes(32));

  before(async () => {
    everything = await startEverything('sse');
    // Three tokens and (for the test's length) no refill: the GET, initialize and one more.
    gateway = await startTestGateway(`listen: 127.0.0.1:0
upstream:
  url: ${everything.url}
  transport: sse
auth:
  session_secret: "${'e'.repeat(40)}"
keys:
  - label: carol
    hash: "sha256:${sha256Hex(CAROL)}"
    allow: [echo]
    rate_limit: { capacity: 3, refill_per_second: 0.001 }
`);
  });
  after(async () => {
    await gateway.close(200);
    await everything.close();
  });

  it('failed before: a batch refused for its bucket after its body was read gets a 202 with the Retry-After the 429 would have, and its errors on the stream', async () => {
    const stream = await openStream(gateway.mcpUrl, CAROL);
    try {
      const { data: endpoint } = await stream.next();
      const url = new URL(endpoint, gateway.url).href;
      const initialized = await post(url, CAROL, initialize(1));
      assert.equal(initialized.status, 202);
      assert.equal(initialized.headers.get('retry-after'), null, 'an answered request carries none');
      assert.equal((JSON.parse((await stream.next()).data) as { id: number }).id, 1);
      // One token left: the batch's first is paid before its body is read, its second is not.
      const batch = JSON.stringify([
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        { jsonrpc: '2.0', id: 3, method: 'ping' },
      ]);
      const refused = await post(url, CAROL, batch);
      assert.equal(refused.status, 202, 'a client of this transport reads its answers on the stream');
      const retryAfter = Number(refused.headers.get('retry-after'));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1,
        `Retry-After ${refused.headers.get('retry-after')}`,
      );
      const errors = JSON.parse((await stream.next()).data) as { id: number; error: { code: number } }[];
      assert.deepEqual(
        errors.map((e) => [e.id, e.error.code]),
        [
          [2, -32029],
          [3, -32029],
        ],
      );
      const line = await waitFor(
        () => gateway.auditLines.find((l) => l.http_method === 'POST' && l.decision === 'rate_limited'),
        2000,
        'the refused batch in the audit log',
      );
      assert.equal(line.reason, 'ERR_RATE_LIMITED');
      assert.equal(line.status, 202);
    } finally {
      stream.close();
    }
  });
});
