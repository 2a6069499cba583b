/**
 * Issue 15, at the byte level: an HTTP+SSE upstream the test drives by hand, so the GET stream can
 * carry what a real server rarely sends on cue: multi-line `data:`, notifications interleaved with
 * responses, a list split across many chunks, responses to requests the gateway never forwarded,
 * events the transport does not define, an endpoint on another origin.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/net.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { config, KEY, notification, post, tick, TOOLS } from '../helpers/sse-fixtures.ts';

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

  it('answers a request refused while parsing on the stream too; one with no id to answer in the POST', async () => {
    const { endpoint } = await open();
    const sent = upstream.posts.length;
    // Two keys that differ only by case: refused by the parse (with the request's id), not the judge.
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","Name":"x","arguments":{}}}',
    });
    assert.equal(res.status, 202, 'the answer goes on the stream, where the client waits for it');
    await res.text();
    const answer = JSON.parse((await stream!.next()).data) as { id: number; error: { code: number } };
    assert.equal(answer.id, 6);
    assert.equal(answer.error.code, -32600);
    // Bytes that name no request: nothing to match on the stream, so the POST says it.
    const garbage = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: '{"jsonrpc":',
    });
    assert.equal(garbage.status, 400);
    assert.equal(((await garbage.json()) as { id: unknown }).id, null);
    assert.equal(upstream.posts.length, sent, 'nothing reached the upstream');
    // One line each: the refusal answered on the stream (202, invalid), the one in the POST (400).
    await waitFor(() =>
      gateway.auditLines.some((l) => l.status === 202 && l.reason === 'ERR_INVALID_REQUEST') &&
      gateway.auditLines.some((l) => l.status === 400 && l.reason === 'ERR_PARSE')
        ? true
        : undefined,
    );
    const onStream = gateway.auditLines.filter((l) => l.status === 202 && l.reason === 'ERR_INVALID_REQUEST');
    assert.equal(onStream.length, 1);
    assert.equal(onStream[0]!.decision, 'invalid');
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
