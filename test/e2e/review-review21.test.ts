/**
 * Attack review of the session that made an HTTP+SSE stream a reload keeps for its owed answers
 * refuse its session's new POSTs, split the relay's send watch and tail pump into files of their
 * own, timed the OAuth token cache on the monotonic clock and refused Mcp-Param numbers with a
 * leading zero. `hole:` tests say what failed before their fix; `holds:` tests are attacks that did
 * not get through, kept so a regression shows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import type { KeySpec } from '../helpers/review-config.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { legacyClients, messageEvent, postAs } from '../helpers/legacy-session.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { waitFor } from '../helpers/net.ts';

const SECRET = 'r'.repeat(40);
const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } };
const answer = (id: string) =>
  messageEvent({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'ran' }] } });

/**
 * An HTTP+SSE session of `alice` with a tool call in flight, then a reload that changes only her
 * label (the stream is kept until it delivered that call's answer).
 */
async function keptSession(
  run: (s: {
    gateway: TestGateway;
    upstream: RawSseUpstream;
    alice: KeySpec;
    a: Awaited<ReturnType<ReturnType<typeof legacyClients>['open']>>;
    id: string;
  }) => Promise<void>,
): Promise<void> {
  const upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S1`);
  const alice: KeySpec = { label: 'alice', key: newKey() };
  const conf = (a: KeySpec) =>
    reviewConfig(upstream.url, [a], '  transport: sse\n', { secret: SECRET, resources: [] });
  const gateway = await startTestGateway(conf(alice));
  const opened: OpenedStream[] = [];
  try {
    const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);
    const a = await open(alice.key);
    const { id } = await forwarded(alice.key, a.endpoint, call);
    const outcome = await gateway.runtime.reload(
      parseConfigText(conf({ ...alice, label: 'alice2' }), {}, Date.now()).config!,
    );
    assert.ok(outcome.applied && outcome.endedStreams === 1);
    assert.equal(upstream.streams[0]!.closed, false, 'kept for the answer it owes');
    await run({ gateway, upstream, alice, a, id });
  } finally {
    for (const s of opened) s.close();
    await gateway.close(200);
    await upstream.close();
  }
}

describe('review-review21: an HTTP+SSE stream a reload keeps for its owed answers', () => {
  it("hole: the client's answer to the upstream's elicitation was refused, so the owed call never ended and the stream stayed for good failed before: 503", async () => {
    // failed before: the POST carrying the client's answer to the elicitation the running tool asked
    // got 503 ERR_CONFIG_RELOADED like a new request (and again on every retry): the tool waited for
    // it, so the answer the stream owed never came, and the stream (and its session, every POST of
    // it refused) stayed open for good. An answer or a notification adds nothing the stream owes.
    await keptSession(async ({ upstream, alice, a, id }) => {
      const ask = { jsonrpc: '2.0', id: 'el-1', method: 'elicitation/create', params: { message: 'sure?' } };
      a.up.res.write(messageEvent(ask));
      const asked = await a.stream.next(3000);
      assert.equal((JSON.parse(asked.data) as { method: string }).method, 'elicitation/create');
      const arrived = upstream.nextPost();
      const reply = await postAs(alice.key, a.endpoint, {
        jsonrpc: '2.0',
        id: 'el-1',
        result: { action: 'accept', content: {} },
      });
      assert.equal(reply.status, 202, await reply.text());
      assert.deepEqual(((await arrived) as { id: string }).id, 'el-1');
      // The tool, answered, ends; the stream delivers its answer and ends.
      a.up.res.write(answer(id));
      const event = await a.stream.next(3000);
      assert.deepEqual((JSON.parse(event.data) as { result?: unknown }).result, {
        content: [{ type: 'text', text: 'ran' }],
      });
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });

  it('hole: a client could not cancel the owed call whose answer never came, so the stream stayed for good failed before: 503', async () => {
    // failed before: the client's notifications/cancelled of the call (what an SDK client sends when
    // its request times out) got 503, so the stream went on owing an answer the upstream would never
    // send, and refused every POST of its session for as long as the client kept the connection.
    await keptSession(async ({ upstream, alice, a }) => {
      const arrived = upstream.nextPost();
      const cancel = await postAs(alice.key, a.endpoint, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 1, reason: 'timed out' },
      });
      assert.equal(cancel.status, 202, await cancel.text());
      assert.equal(((await arrived) as { method: string }).method, 'notifications/cancelled');
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });

  it('holds: a new request of the kept session is still refused (503, retry), a batch hiding one among answers too', async () => {
    await keptSession(async ({ upstream, alice, a, id }) => {
      for (const body of [
        { ...call, id: 2 },
        [
          { jsonrpc: '2.0', id: 'el-9', result: {} },
          { ...call, id: 3 },
        ],
      ]) {
        const res = await postAs(alice.key, a.endpoint, body);
        const text = await res.text();
        assert.equal(res.status, 503, text);
        assert.equal(res.headers.get('retry-after'), '1');
        if (!Array.isArray(body)) assert.equal((JSON.parse(text) as { id: unknown }).id, 2);
      }
      assert.equal(upstream.posts.length, 1, 'the refused calls never reached the upstream');
      a.up.res.write(answer(id));
      await a.stream.next(3000);
      await waitFor(() => upstream.streams[0]!.closed || undefined, 3000, 'the stream ended');
    });
  });
});
