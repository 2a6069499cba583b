/**
 * Attack review 17: this session's new code (the shutdown's grace end and flush window, reload ending
 * answers, the initialize's sealed event ids, HTTP+SSE owed answers), through a real gateway. `hole:`
 * tests assert the secure behaviour and say what happened before their fix ("failed before: ...");
 * `holds:` tests are attacks that did not get through.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import { clientHeaders, keyedConfig, openSocket, startRawUpstream, statuses } from '../helpers/raw-http.ts';
import type { RawUpstream } from '../helpers/raw-http.ts';
import { waitFor } from '../helpers/net.ts';
import { newKey } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { config as sseConfig, KEY as SSE_KEY } from '../helpers/sse-fixtures.ts';
import { openStream } from '../helpers/sse-stream.ts';

const KEY = newKey();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('review17: the shutdown after its grace', () => {
  let upstream: RawUpstream;
  before(async () => {
    upstream = await startRawUpstream();
  });
  after(async () => upstream.close());

  it('hole: failed before: a body that ends in the flush window after the grace is not forwarded', async () => {
    const gateway = await startTestGateway(keyedConfig(upstream.url, KEY));
    const port = Number(new URL(gateway.url).port);
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 'late',
      method: 'tools/call',
      params: { name: 'delete_everything', arguments: {} },
    });
    const client = await openSocket(port);
    client.socket.write(
      `POST /mcp HTTP/1.1\r\n${clientHeaders(port, KEY)}Content-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    await sleep(100);
    const posts = upstream.state.posts;
    const closed = gateway.close(100);
    // The grace (100 ms) ends with the body still coming: the gateway says it is cut. Its last bytes
    // come in the 250 ms its clients are given to take their errors.
    await sleep(180);
    client.socket.write(body.slice(10));
    await closed;
    await waitFor(() => client.closed || undefined, 2000, 'the connection to close');
    // failed before: the tool call reached the upstream after the grace had ended (and, answered
    // in the flush window, its client got 200 while its line said ERR_SHUTTING_DOWN).
    assert.equal(upstream.state.posts, posts, 'a request forwarded after the grace ended');
    assert.deepEqual(statuses(client.text), [503], client.text);
    const line = gateway.auditLines.find((l) => l.rpc_id === 'late');
    assert.equal(line?.decision, 'deny');
    assert.equal(line?.reason, 'ERR_SHUTTING_DOWN');
  });
});

describe('review17: an HTTP+SSE stream at shutdown, a POST of its session still being received', () => {
  let upstream: RawSseUpstream;
  before(async () => {
    upstream = await startRawSseUpstream(() => '/legacy/messages?sid=R17');
  });
  after(async () => upstream.close());

  it('hole: failed before: the stream is given the grace for a POST of its session whose body was still coming', async () => {
    const gateway = await startTestGateway(sseConfig(upstream.url));
    const stream = await openStream(gateway.mcpUrl, SSE_KEY);
    const endpoint = new URL((await stream.next()).data, gateway.url);
    const port = Number(endpoint.port);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo' } });
    const client = await openSocket(port);
    client.socket.write(
      `POST ${endpoint.pathname}${endpoint.search} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
        `Authorization: Bearer ${SSE_KEY}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    await sleep(100);
    const closing = gateway.close(1500);
    await sleep(100);
    const arrived = upstream.nextPost();
    client.socket.write(body.slice(10));
    const tag = ((await arrived) as { id: string }).id;
    await waitFor(() => statuses(client.text)[0], 2000, "the POST's answer");
    assert.deepEqual(statuses(client.text), [202]);
    upstream.write(`data: ${JSON.stringify({ jsonrpc: '2.0', id: tag, result: { content: [] } })}\n\n`);
    // failed before: the stream was ended when the shutdown began (it owed nothing yet): the call the
    // upstream accepted in the grace was answered to nobody, its client got no answer and no error.
    assert.deepEqual(JSON.parse((await stream.next(2000)).data), {
      jsonrpc: '2.0',
      id: 9,
      result: { content: [] },
    });
    await assert.rejects(stream.next(2000), /the stream ended/);
    await closing;
    stream.close();
    client.socket.destroy();
  });
});
