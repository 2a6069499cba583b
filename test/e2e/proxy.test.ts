/** Issue 2: the transparent streaming proxy, end to end with real SDK clients and servers. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { startSdkUpstream } from '../helpers/sdk-upstream.ts';
import type { SdkUpstream } from '../helpers/sdk-upstream.ts';
import { startEverything } from '../helpers/everything.ts';
import type { Everything } from '../helpers/everything.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { freePort, waitFor } from '../helpers/net.ts';

const open = (upstreamUrl: string, extra = '') => `
listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
auth:
  allow_unauthenticated: true
${extra}`;

async function connect(url: string, capabilities: Record<string, unknown> = {}) {
  const client = new Client({ name: 'e2e', version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  return { client, transport };
}

const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});
const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

describe('proxy with an SDK-built upstream', () => {
  let upstream: SdkUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startSdkUpstream();
    gateway = await startTestGateway(open(upstream.url, 'streams:\n  keepalive: 100ms'));
  });
  after(async () => {
    await gateway.close(1000);
    await upstream.close();
  });

  it('gives the same results through the gateway as without it', async () => {
    const direct = await connect(upstream.url);
    const viaGateway = await connect(gateway.mcpUrl);
    try {
      assert.deepEqual(await viaGateway.client.listTools(), await direct.client.listTools());
      const args = { name: 'echo', arguments: { message: 'héllo ✓' } };
      assert.deepEqual(await viaGateway.client.callTool(args), await direct.client.callTool(args));
      assert.deepEqual(await viaGateway.client.listPrompts(), await direct.client.listPrompts());
      assert.deepEqual(await viaGateway.client.listResources(), await direct.client.listResources());
      assert.equal(viaGateway.client.getServerVersion()?.name, 'test-upstream');
    } finally {
      await direct.client.close();
      await viaGateway.client.close();
    }
  });

  it('delivers the first progress notification while the upstream tool is still running', async () => {
    const { client } = await connect(gateway.mcpUrl);
    const started = performance.now();
    const progressAt: number[] = [];
    const result = await client.callTool(
      { name: 'progress', arguments: { steps: 3, delayMs: 400 } },
      undefined,
      {
        onprogress: () => void progressAt.push(performance.now() - started),
      },
    );
    const doneAt = performance.now() - started;
    await client.close();
    assert.deepEqual(result.content, [{ type: 'text', text: 'done after 3 steps' }]);
    assert.equal(progressAt.length, 3);
    // The upstream sleeps 400 ms after each notification: the first one must arrive long before
    // the result, i.e. it was not held back until the response was complete.
    assert.ok(progressAt[0]! < doneAt - 700, `first progress at ${progressAt[0]} ms, result at ${doneAt} ms`);
  });

  it('carries a server-initiated sampling request on the GET stream and the answer back', async () => {
    const { client, transport } = await connect(gateway.mcpUrl, { sampling: {} });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'sampled-by-client' },
      model: 'test-model',
    }));
    const before = upstream.received.length;
    // Give the client's GET stream time to open before the upstream sends on it.
    await waitFor(
      () => upstream.received.slice(before - 5).some((r) => r.method === 'GET') || undefined,
      3000,
      'GET stream',
    );
    const result = await client.callTool({ name: 'ask_sampling', arguments: {} });
    assert.deepEqual(result.content, [{ type: 'text', text: 'sampled: sampled-by-client' }]);
    const sessionId = transport.sessionId;
    assert.ok(sessionId);
    await transport.terminateSession();
    await client.close();
    assert.ok(
      upstream.received.some((r) => r.method === 'DELETE' && r.headers['mcp-session-id'] === sessionId),
    );
  });

  it('drops hop-by-hop and unlisted headers, sets X-Forwarded-*, and passes MCP headers through', async () => {
    // fetch() refuses to set Connection, so this one is a raw node:http request.
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          ...HEADERS,
          connection: 'keep-alive, x-drop-me',
          'x-drop-me': '1',
          'x-keep-me': '2',
          'mcp-protocol-version': '2025-06-18',
          te: 'trailers',
          'proxy-authorization': 'Basic eDp5',
        },
      });
      req.on('response', resolve).on('error', reject);
      req.end(INIT);
    });
    assert.equal(res.statusCode, 200);
    assert.ok(res.headers['mcp-session-id']);
    assert.ok(res.headers['x-request-id']);
    res.resume();
    await new Promise((r) => res.on('end', r));
    const seen = upstream.received.at(-1)!;
    assert.equal(seen.headers['x-drop-me'], undefined);
    assert.equal(seen.headers.te, undefined);
    assert.equal(seen.headers['proxy-authorization'], undefined);
    // Not in the allowlist (nor in upstream.forward_headers): dropped too.
    assert.equal(seen.headers['x-keep-me'], undefined);
    assert.equal(seen.headers['mcp-protocol-version'], '2025-06-18');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], new URL(gateway.url).host);
    assert.equal(seen.headers.accept, HEADERS.accept);
  });

  it('marks SSE responses unbuffered and sends keepalive comments on idle streams', async () => {
    const init = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
    const sid = init.headers.get('mcp-session-id')!;
    await init.text();
    const res = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'slow', arguments: { ms: 450 } },
      }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const text = await res.text();
    assert.match(text, /^: keepalive$/m);
    assert.match(text, /slow done/);
    // Keepalives are only ever inserted between events.
    for (const block of text.split(/\n\n/))
      assert.ok(!/: keepalive/.test(block) || block.trim() === ': keepalive', block);
  });

  it('passes upstream statuses and bodies through unchanged', async () => {
    const unknown = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-session-id': 'no-such-session' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }),
    });
    assert.equal(unknown.status, 404);
    assert.deepEqual(await unknown.json(), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -32001, message: 'Session not found' },
    });
    const notAcceptable = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain' },
      body: INIT,
    });
    const directNotAcceptable = await fetch(upstream.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/plain' },
      body: INIT,
    });
    assert.equal(notAcceptable.status, directNotAcceptable.status);
    assert.equal(await notAcceptable.text(), await directNotAcceptable.text());
  });

  it('answers methods other than POST, GET and DELETE with 405 and never forwards them', async () => {
    const before = upstream.received.length;
    for (const method of ['PUT', 'PATCH']) {
      const res = await fetch(gateway.mcpUrl, { method, headers: HEADERS, body: INIT });
      assert.equal(res.status, 405);
      assert.equal(res.headers.get('allow'), 'GET, POST, DELETE');
      assert.equal(((await res.json()) as { error: { code: number } }).error.code, -32600);
    }
    assert.equal(upstream.received.length, before);
  });

  it('refuses an oversized body with 413 and a JSON-RPC error', async () => {
    const small = await startTestGateway(open(upstream.url, 'limits:\n  max_body_bytes: 1KiB'));
    try {
      const before = upstream.received.length;
      const big = JSON.stringify({
        jsonrpc: '2.0',
        id: 9,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: 'x'.repeat(4096) } },
      });
      const res = await fetch(small.mcpUrl, { method: 'POST', headers: HEADERS, body: big });
      assert.equal(res.status, 413);
      assert.equal(res.headers.get('content-type'), 'application/json');
      const body = (await res.json()) as { error: { code: number } };
      assert.equal(body.error.code, -32600);
      assert.equal(upstream.received.length, before);
    } finally {
      await small.close(100);
    }
  });

  it('aborts the upstream request at once when the client disconnects', async () => {
    const init = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
    const sid = init.headers.get('mcp-session-id')!;
    await init.text();
    const controller = new AbortController();
    const pending = fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 4,
        method: 'tools/call',
        params: { name: 'slow', arguments: { ms: 5000 } },
      }).replace('"id":4', '"id":"abort-me"'),
      signal: controller.signal,
    }).then((r) => r.text());
    // The upstream sees the gateway's tag for the id, not "abort-me".
    const record = await waitFor(
      () => upstream.received.find((r) => r.body.includes('"arguments":{"ms":5000}')),
      3000,
      'upstream to receive the call',
    );
    controller.abort();
    await assert.rejects(pending);
    await waitFor(() => record.closedEarly || undefined, 2000, 'upstream request to be closed');
    const ctx = await waitFor(
      () =>
        gateway.finished.find(
          (c) => c.messages?.[0] && 'id' in c.messages[0] && c.messages[0].id === 'abort-me',
        ),
      2000,
      'request to finish',
    );
    assert.equal(
      ctx.aborted,
      true,
      JSON.stringify({ status: ctx.status, out: ctx.bytesOut, d: ctx.decision, r: ctx.reason }),
    );
  });
  it('closes the upstream GET stream at once when the client leaves, and ends the client stream when the upstream does', async () => {
    const init = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
    const sid = init.headers.get('mcp-session-id')!;
    await init.text();
    const controller = new AbortController();
    const before = upstream.received.length;
    const res = await fetch(gateway.mcpUrl, {
      headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const record = await waitFor(
      () => upstream.received.slice(before).find((r) => r.method === 'GET'),
      3000,
      'the GET to reach the upstream',
    );
    assert.equal(record.closedEarly, false);
    controller.abort();
    await waitFor(() => record.closedEarly || undefined, 2000, 'the upstream GET stream to be closed');

    // The other way round: the upstream ends the session's stream (DELETE), the client's stream ends.
    const again = await fetch(gateway.mcpUrl, {
      headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
    });
    assert.equal(again.status, 200);
    const ended = again.text();
    const del = await fetch(gateway.mcpUrl, {
      method: 'DELETE',
      headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
    });
    assert.equal(del.status, 200);
    await ended;
  });
});

describe('idle GET streams', () => {
  it('never use up the connections that requests need (a named regression: stream exhaustion)', async () => {
    const upstream = await startSdkUpstream();
    const gateway = await startTestGateway(open(upstream.url).replace('url:', 'connections: 2\n  url:'));
    const controllers: AbortController[] = [];
    try {
      // More open streams than the request pool has connections.
      for (let i = 0; i < 4; i++) {
        const init = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
        const sid = init.headers.get('mcp-session-id')!;
        await init.text();
        const controller = new AbortController();
        controllers.push(controller);
        const res = await fetch(gateway.mcpUrl, {
          headers: {
            accept: 'text/event-stream',
            'mcp-session-id': sid,
            'mcp-protocol-version': '2025-06-18',
          },
          signal: controller.signal,
        });
        assert.equal(res.status, 200);
      }
      const call = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: HEADERS,
        body: INIT,
        signal: AbortSignal.timeout(3000),
      });
      assert.equal(call.status, 200);
      await call.text();
    } finally {
      for (const c of controllers) c.abort();
      await gateway.close(100);
      await upstream.close();
    }
  });
});

describe('proxy with server-everything (streamableHttp)', () => {
  let everything: Everything;
  let gateway: TestGateway;
  before(async () => {
    everything = await startEverything('streamableHttp');
    gateway = await startTestGateway(open(everything.url));
  });
  after(async () => {
    await gateway.close(1000);
    await everything.close();
  });

  it('lists and calls tools, prompts and resources with the same results as directly', async () => {
    const direct = await connect(everything.url);
    const via = await connect(gateway.mcpUrl);
    try {
      assert.deepEqual(await via.client.listTools(), await direct.client.listTools());
      const sum = { name: 'get-sum', arguments: { a: 2, b: 40 } };
      assert.deepEqual(await via.client.callTool(sum), await direct.client.callTool(sum));
      assert.deepEqual(await via.client.listPrompts(), await direct.client.listPrompts());
      const resources = await via.client.listResources();
      assert.deepEqual(resources, await direct.client.listResources());
      const first = resources.resources[0]!;
      assert.deepEqual(
        await via.client.readResource({ uri: first.uri }),
        await direct.client.readResource({ uri: first.uri }),
      );
    } finally {
      await direct.client.close();
      await via.client.close();
    }
  });

  it('streams progress notifications of a long-running operation as they happen', async () => {
    const { client } = await connect(gateway.mcpUrl);
    const started = performance.now();
    const at: number[] = [];
    await client.callTool(
      { name: 'trigger-long-running-operation', arguments: { duration: 2, steps: 4 } },
      undefined,
      {
        onprogress: () => void at.push(performance.now() - started),
      },
    );
    const done = performance.now() - started;
    await client.close();
    assert.equal(at.length, 4);
    assert.ok(at[0]! < done - 1000, `first progress at ${at[0]} ms, result at ${done} ms`);
  });
});

describe('upstream failures', () => {
  it('answers 502 with a JSON-RPC error carrying the request id when the upstream is down', async () => {
    const port = await freePort();
    const gateway = await startTestGateway(open(`http://127.0.0.1:${port}/mcp`));
    try {
      const res = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
      assert.equal(res.status, 502);
      assert.equal(res.headers.get('content-type'), 'application/json');
      const text = await res.text();
      assert.deepEqual(JSON.parse(text), {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32002, message: 'upstream unavailable' },
      });
      assert.doesNotMatch(text, /127\.0\.0\.1|ECONNREFUSED|at /);
      await waitFor(() => gateway.finished.length > 0 || undefined);
      assert.equal(gateway.finished[0]!.decision, 'upstream_error');
      assert.deepEqual(gateway.upstreamErrors, ['refused']);
    } finally {
      await gateway.close(100);
    }
  });

  it('answers 504 when the upstream does not send headers in time', async () => {
    const hung = createServer(() => {});
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const { port } = hung.address() as AddressInfo;
    const gateway = await startTestGateway(
      open(`http://127.0.0.1:${port}/mcp`, '').replace('url:', 'timeout: 300ms\n  url:'),
    );
    try {
      const res = await fetch(gateway.mcpUrl, { method: 'POST', headers: HEADERS, body: INIT });
      assert.equal(res.status, 504);
      assert.deepEqual(await res.json(), {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32002, message: 'upstream timed out' },
      });
    } finally {
      await gateway.close(100);
      hung.closeAllConnections();
      hung.close();
    }
  });

  it('serves /healthz always and /readyz only while the upstream answers', async () => {
    const upstream = await startSdkUpstream();
    const gateway = await startTestGateway(open(upstream.url));
    try {
      assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${gateway.url}/readyz`)).status, 200);
      const before = upstream.received.length;
      await upstream.close();
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal((await fetch(`${gateway.url}/readyz`)).status, 503);
      assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
      assert.ok(upstream.received.slice(before).every((r) => r.method === 'OPTIONS'));
    } finally {
      await gateway.close(100);
    }
  });
});
