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
