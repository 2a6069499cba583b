/**
 * A key V8's JSON.parse misreads, through a real gateway to an upstream that records the bytes it
 * got (key-check.ts). A first request, allowed, spells a key holding a backslash (`n\u0`) after a
 * key no one else sends; the second spells `name` as `n\u0061me` in the same place, which the
 * gateway's JSON.parse read as `n\u0`: it judged a call of echo and forwarded, with the escape
 * spelled plainly, `"name":"echo","name":"rm_rf"`, rm_rf to an upstream that keeps the last. Now
 * it is refused with -32600 and its id, and the upstream never sees it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mintKey } from '../../src/auth/key-format.ts';
import { postBody, startRawUpstreamGateway, withBody } from '../helpers/raw-upstream.ts';
import type { RawUpstreamGateway } from '../helpers/raw-upstream.ts';

const KEY = mintKey(randomBytes(32));

const call = (id: number, params: string) =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${params}}`;

describe('a key V8 misreads, through the gateway', () => {
  let upstream: RawUpstreamGateway;
  const received: string[] = [];
  before(async () => {
    upstream = await startRawUpstreamGateway(
      withBody((bytes, res) => {
        const raw = bytes.toString('utf8');
        received.push(raw);
        // The tag, read without JSON.parse of the whole (which shares the gateway's V8).
        const id = /"id":("[^"]*")/.exec(raw)?.[1] ?? 'null';
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"jsonrpc":"2.0","id":${id},"result":{"content":[]}}`);
      }),
      KEY,
      ['echo'],
    );
  });
  after(async () => {
    await upstream.close();
  });

  const post = (body: string) => postBody(upstream, KEY, body);

  it('a tool name spelled with a \\u escape after a primed key is refused, and never forwarded', async () => {
    const primed = await post(call(1, String.raw`{"k7e2":1,"name":"echo","n\\u0":"x","arguments":{}}`));
    assert.equal(primed.status, 200, await primed.text());
    assert.equal(received.length, 1);

    const res = await post(call(2, String.raw`{"k7e2":1,"name":"echo","n\u0061me":"rm_rf","arguments":{}}`));
    const answer = (await res.json()) as { id: unknown; error?: { code: number } };
    assert.equal(res.status, 400, JSON.stringify(answer));
    assert.equal(answer.id, 2);
    assert.equal(answer.error?.code, -32600);
    assert.equal(received.length, 1, `forwarded: ${received.at(-1)}`);
  });
});
