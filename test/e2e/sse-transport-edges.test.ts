/**
 * Issue 15, the HTTP+SSE transport at its edges: an endpoint the gateway cannot take over,
 * public_url, shutdown, and a session whose POSTs reach another replica than its stream.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { openStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { config, KEY, post, TOOLS } from '../helpers/sse-fixtures.ts';

describe('HTTP+SSE transport: an endpoint the gateway cannot take over', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawSseUpstream(() => 'http://elsewhere.example:9999/messages?sid=X');
    gateway = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it('ends the stream instead of letting the client POST around the gateway', async () => {
    const stream = await openStream(gateway.mcpUrl, KEY);
    try {
      await assert.rejects(stream.next(2000), /the stream ended/);
      assert.ok(!stream.raw().includes('elsewhere'), 'the foreign endpoint never reached the client');
    } finally {
      stream.close();
    }
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.http_method === 'GET'),
      2000,
      "the stream's audit line",
    );
    assert.equal(line.decision, 'upstream_error');
    assert.equal(line.reason, 'ERR_UPSTREAM_PROTOCOL');
  });
});

describe('HTTP+SSE transport: shutdown and public_url', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S2');
    gateway = await startTestGateway(
      `public_url: https://mcp.example.com/tenant-a/legacy/sse\n${config(upstream.url)}`,
    );
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  it("sends clients to public_url's path, and ends open streams on shutdown with their audit line", async () => {
    const stream = await openStream(gateway.mcpUrl, KEY);
    try {
      const endpoint = await stream.next();
      assert.match(endpoint.data, /^\/tenant-a\/legacy\/sse\?session=[A-Za-z0-9_.~-]+$/);
      const closing = gateway.close(2000);
      await assert.rejects(stream.next(2000), /the stream ended/);
      await closing;
    } finally {
      stream.close();
    }
    const line = gateway.auditLines.find((l) => l.http_method === 'GET');
    assert.ok(line, 'the ended stream has its audit line');
    assert.equal(line.status, 200);
    assert.equal(line.events_filtered, 0);
    await waitFor(() => upstream.streams.at(-1)!.closed, 2000, 'the upstream stream to close');
  });
});

describe('HTTP+SSE transport across two replicas sharing auth.session_secret', () => {
  let upstream: RawSseUpstream;
  let holder: TestGateway;
  let other: TestGateway;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=R1');
    holder = await startTestGateway(config(upstream.url));
    other = await startTestGateway(config(upstream.url));
  });
  after(async () => {
    await holder.close(200);
    await other.close(200);
    await upstream.close();
  });

  it('matches on the stream a request POSTed through the other replica (stateless tags)', async () => {
    const stream = await openStream(holder.mcpUrl, KEY);
    try {
      const { data } = await stream.next();
      // The same session, POSTed to the replica that does not hold the stream.
      const endpoint = new URL(data, other.url).href;
      const arrived = upstream.nextPost();
      assert.equal((await post(endpoint, { jsonrpc: '2.0', id: 4, method: 'tools/list' })).status, 202);
      const sent = (await arrived) as { id: string };
      upstream.write(
        `data: ${JSON.stringify({ jsonrpc: '2.0', id: sent.id, result: { tools: TOOLS } })}\n\n`,
      );
      const answer = JSON.parse((await stream.next()).data) as {
        id: number;
        result: { tools: { name: string }[] };
      };
      assert.equal(answer.id, 4);
      assert.deepEqual(
        answer.result.tools.map((t) => t.name),
        ['echo'],
      );
      // A denial there cannot reach this stream: it is answered in the POST's body instead.
      const posts = upstream.posts.length;
      const denied = await post(endpoint, {
        jsonrpc: '2.0',
        id: 6,
        method: 'tools/call',
        params: { name: 'secret', arguments: {} },
      });
      assert.equal(denied.status, 200);
      const body = (await denied.json()) as { id: number; error: { code: number } };
      assert.equal(body.id, 6);
      assert.equal(body.error.code, -32602);
      assert.equal(upstream.posts.length, posts, 'the denied call never reached the upstream');
    } finally {
      stream.close();
    }
  });
});
