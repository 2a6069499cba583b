/**
 * Issue 15, at the byte level: an HTTP+SSE upstream the test drives by hand, so the GET stream can
 * carry what a real server rarely sends on cue: multi-line `data:`, notifications interleaved with
 * responses, a list split across many chunks, responses to requests the gateway never forwarded,
 * events the transport does not define, an endpoint on another origin.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';

const KEY = mintKey(randomBytes(32));

function config(upstreamUrl: string): string {
  return `listen: 127.0.0.1:0
upstream:
  url: ${upstreamUrl}
  transport: sse
streams:
  keepalive: 150ms
auth:
  session_secret: "${'b'.repeat(40)}"
keys:
  - label: echo-only
    hash: "sha256:${sha256Hex(KEY)}"
    allow: [echo]
`;
}

const notification = (text: string) =>
  `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: text } })}\n\n`;

const TOOLS = [
  { name: 'echo', inputSchema: { type: 'object' } },
  { name: 'secret', inputSchema: { type: 'object' } },
  { name: 'admin-reset', inputSchema: { type: 'object' } },
];

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const tick = () => new Promise((r) => setImmediate(r));

describe('HTTP+SSE transport, byte by byte', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let stream: OpenedStream | undefined;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=S1');
    gateway = await startTestGateway(config(upstream.url));
  });
  afterEach(() => stream?.close());
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  async function open(): Promise<{ endpoint: string }> {
    stream = await openStream(gateway.mcpUrl, KEY);
    const first = await stream.next();
    assert.equal(first.event, 'endpoint');
    return { endpoint: new URL(first.data, gateway.url).href };
  }

  it('filters a multi-line list split across many chunks, between interleaved notifications', async () => {
    const { endpoint } = await open();
    const arrived = upstream.nextPost();
    const accepted = await post(endpoint, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(accepted.status, 202);
    assert.equal(await accepted.text(), 'Accepted');
    // The upstream gets the request under the gateway's signed tag, not the client's id.
    const sent = (await arrived) as { id: string; method: string };
    assert.equal(sent.method, 'tools/list');
    assert.match(sent.id, /^g1t/);
    assert.equal(upstream.posts.at(-1)!.path, '/legacy/messages?sid=S1');

    // The first event reaches the client before the upstream has sent the rest.
    upstream.write(notification('first'));
    const first = await stream!.next();
    assert.equal(first.event, 'message');
    assert.equal((JSON.parse(first.data) as { params: { data: string } }).params.data, 'first');

    // A response nobody asked for, an event the transport does not define, a comment.
    upstream.write(
      `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 99, result: { tools: TOOLS } })}\n\n`,
    );
    upstream.write('event: ping\ndata: {}\n\n: just a comment\n\n');
    // The list: pretty-printed (one data: line per JSON line), CRLF endings, 7-byte chunks.
    const pretty = JSON.stringify({ jsonrpc: '2.0', id: sent.id, result: { tools: TOOLS } }, null, 2);
    const event = `event: message\r\n${pretty
      .split('\n')
      .map((l) => `data: ${l}`)
      .join('\r\n')}\r\n\r\n`;
    for (let i = 0; i < event.length; i += 7) {
      upstream.write(event.slice(i, i + 7));
      await tick();
    }
    upstream.write(notification('second'));

    const list = await stream!.next();
    assert.equal(list.event, 'message');
    const parsed = JSON.parse(list.data) as { id: number; result: { tools: { name: string }[] } };
    assert.equal(parsed.id, 1);
    assert.deepEqual(
      parsed.result.tools.map((t) => t.name),
      ['echo'],
    );
    const second = await stream!.next();
    assert.equal((JSON.parse(second.data) as { params: { data: string } }).params.data, 'second');
    const raw = stream!.raw();
    assert.ok(!raw.includes('secret') && !raw.includes('admin-reset'), 'no hidden tool on the stream');
    assert.ok(!raw.includes('"id":99') && !raw.includes('ping'), 'nothing unasked-for passed');
    assert.ok(!raw.includes('/legacy/messages'), "the upstream's endpoint never reaches the client");

    // Idle: the gateway's own keepalive comment, between events.
    await waitFor(() => stream!.raw().includes(': keepalive\n\n'), 2000, 'a keepalive comment');

    stream!.close();
    const line = await waitFor(
      () => gateway.auditLines.findLast((l) => l.http_method === 'GET'),
      2000,
      "the stream's audit line",
    );
    // The unasked-for response, the ping event, and the filtered list.
    assert.equal(line.events_filtered, 3);
    assert.equal(line.key, 'echo-only');
    // The client left: the gateway hung up its upstream stream too.
    await waitFor(() => upstream.streams.at(-1)!.closed, 2000, 'the upstream stream to close');
  });

  it('security: passes only responses with a tag it signed for this key, with the client id back', async () => {
    const { endpoint } = await open();
    let arrived = upstream.nextPost();
    assert.equal((await post(endpoint, { jsonrpc: '2.0', id: 'a', method: 'tools/list' })).status, 202);
    const tools = ((await arrived) as { id: string }).id;
    // The same client id again, for another list: its own tag, so the answers cannot cross.
    arrived = upstream.nextPost();
    assert.equal((await post(endpoint, { jsonrpc: '2.0', id: 'a', method: 'prompts/list' })).status, 202);
    const prompts = ((await arrived) as { id: string }).id;
    assert.notEqual(tools, prompts);

    const forged = tools.slice(0, -1) + (tools.endsWith('A') ? 'B' : 'A');
    for (const id of ['a', forged, 'g1tnotsigned.sYQ.AAAAAAAAAAAAAAAA']) {
      upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id, result: { tools: TOOLS } })}\n\n`);
    }
    upstream.write(
      `data: ${JSON.stringify({ jsonrpc: '2.0', id: prompts, result: { prompts: [{ name: 'hidden' }] } })}\n\n`,
    );
    upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: tools, result: { tools: TOOLS } })}\n\n`);
    const first = JSON.parse((await stream!.next()).data) as { id: string; result: { prompts: unknown[] } };
    assert.equal(first.id, 'a');
    assert.deepEqual(first.result.prompts, []);
    const second = JSON.parse((await stream!.next()).data) as {
      id: string;
      result: { tools: { name: string }[] };
    };
    assert.equal(second.id, 'a');
    assert.deepEqual(
      second.result.tools.map((t) => t.name),
      ['echo'],
    );
    assert.ok(!stream!.raw().includes('secret') && !stream!.raw().includes('hidden'));
  });

  it('answers a denied call on the stream and never forwards it', async () => {
    const { endpoint } = await open();
    const sent = upstream.posts.length;
    const res = await post(endpoint, {
      jsonrpc: '2.0',
      id: 5,
      method: 'tools/call',
      params: { name: 'secret', arguments: {} },
    });
    assert.equal(res.status, 202);
    const answer = JSON.parse((await stream!.next()).data) as {
      id: number;
      error: { code: number; message: string };
    };
    assert.equal(answer.id, 5);
    assert.equal(answer.error.code, -32602);
    assert.match(answer.error.message, /secret/);
    assert.equal(upstream.posts.length, sent);
    // A response to it from the upstream (never asked) would not be passed on either.
    upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: 5, result: { content: [] } })}\n\n`);
    upstream.write(notification('after'));
    assert.equal(
      (JSON.parse((await stream!.next()).data) as { method: string }).method,
      'notifications/message',
    );
  });

  it('filters each response of a batch by its own request; drops a batch answer holding one never asked', async () => {
    const { endpoint } = await open();
    const arrived = upstream.nextPost();
    const batch = [
      { jsonrpc: '2.0', id: 10, method: 'tools/list' },
      { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'echo', arguments: { m: 1 } } },
    ];
    assert.equal((await post(endpoint, batch)).status, 202);
    const [list, call] = (await arrived) as { id: string; method: string }[];
    assert.deepEqual([list!.method, call!.method], ['tools/list', 'tools/call']);
    upstream.write(
      `data: ${JSON.stringify([
        { jsonrpc: '2.0', id: list!.id, result: { tools: TOOLS } },
        { jsonrpc: '2.0', id: 12, result: { tools: TOOLS } },
      ])}\n\n`,
    );
    upstream.write(
      `data: ${JSON.stringify([
        { jsonrpc: '2.0', id: list!.id, result: { tools: TOOLS } },
        { jsonrpc: '2.0', id: call!.id, result: { content: [{ type: 'text', text: 'ok' }] } },
      ])}\n\n`,
    );
    const answers = JSON.parse((await stream!.next()).data) as {
      id: number;
      result: Record<string, unknown>;
    }[];
    assert.deepEqual(
      answers.map((a) => a.id),
      [10, 11],
    );
    assert.deepEqual(
      (answers[0]!.result.tools as { name: string }[]).map((t) => t.name),
      ['echo'],
    );
    assert.ok(!stream!.raw().includes('"id":12'));
  });
});

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
      assert.match(endpoint.data, /^\/tenant-a\/legacy\/sse\?session=[A-Za-z0-9_.-]+$/);
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
