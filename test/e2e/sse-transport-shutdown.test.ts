/**
 * The HTTP+SSE transport at shutdown: a POST is accepted (202) and its requests are answered on the
 * session's GET stream, so that stream, not the POST, holds the requests in flight
 * (src/transport/sse/owed.ts). It is given the shutdown's grace as they are, ends once it owes
 * nothing, and when the grace ends each request it still owes gets `gateway is shutting down`.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { config, KEY, post } from '../helpers/sse-fixtures.ts';
import { openStream } from '../helpers/sse-stream.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { waitFor } from '../helpers/net.ts';

const call = (id: number) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo', arguments: {} },
});

describe('HTTP+SSE transport: requests in flight at shutdown', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  let stream: OpenedStream;
  let endpoint: string;
  beforeEach(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=D1');
    gateway = await startTestGateway(config(upstream.url));
    stream = await openStream(gateway.mcpUrl, KEY);
    endpoint = new URL((await stream.next()).data, gateway.url).href;
  });
  afterEach(async () => {
    stream.close();
    await gateway.close(100);
    await upstream.close();
  });

  /** POSTs a call; resolves with the tag the upstream received for it. */
  async function inFlight(id: number): Promise<string> {
    const arrived = upstream.nextPost();
    assert.equal((await post(endpoint, call(id))).status, 202);
    return ((await arrived) as { id: string }).id;
  }

  it('hole: failed before: a call in flight when the shutdown begins is given the grace, and its answer reaches the client', async () => {
    // failed before: the stream was ended at once, so the answer had nowhere to go.
    const tag = await inFlight(5);
    const closing = gateway.close(3000);
    await new Promise((r) => setTimeout(r, 100));
    upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } })}\n\n`);
    assert.deepEqual(JSON.parse((await stream.next(2000)).data), {
      jsonrpc: '2.0',
      id: 5,
      result: { content: [] },
    });
    // Owing nothing more, it ends then, well before the grace does.
    const started = Date.now();
    await assert.rejects(stream.next(2000), /the stream ended/);
    await closing;
    assert.ok(Date.now() - started < 1500, 'the shutdown did not wait for the whole grace');
    const line = gateway.auditLines.find((l) => l.http_method === 'GET');
    assert.equal(line?.decision, 'allow');
    assert.equal(line?.reason, undefined);
  });

  it('hole: failed before: a call still unanswered when the grace ends gets `gateway is shutting down` on the stream, and the line says so', async () => {
    // failed before: the stream ended bare at the start of the shutdown; the line said allow.
    await inFlight(6);
    await inFlight(7);
    const closing = gateway.close(300);
    const errors = [JSON.parse((await stream.next(3000)).data), JSON.parse((await stream.next(3000)).data)];
    const error = { code: -32003, message: 'gateway is shutting down' };
    assert.deepEqual(
      errors.sort((a, b) => (a as { id: number }).id - (b as { id: number }).id),
      [
        { jsonrpc: '2.0', id: 6, error },
        { jsonrpc: '2.0', id: 7, error },
      ],
    );
    await assert.rejects(stream.next(2000), /the stream ended/);
    await closing;
    const line = await waitFor(
      () => gateway.auditLines.find((l) => l.http_method === 'GET'),
      2000,
      "the stream's line",
    );
    assert.equal(line.decision, 'deny');
    assert.equal(line.reason, 'ERR_SHUTTING_DOWN');
  });

  it('holds: a call answered before the shutdown is owed nothing: the stream ends at once, with no error', async () => {
    const tag = await inFlight(8);
    upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } })}\n\n`);
    assert.equal((JSON.parse((await stream.next(2000)).data) as { id: number }).id, 8);
    const started = Date.now();
    await gateway.close(3000);
    assert.ok(Date.now() - started < 1000, 'ended at once');
    await assert.rejects(stream.next(2000), /the stream ended/);
    assert.doesNotMatch(stream.raw(), /shutting down/);
  });
});
