/**
 * Client-view review: what a client of one key may see and do through the HTTP+SSE transport's GET
 * stream and POSTs, with two keys (and two clients of one key) on one hand-driven upstream.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestGateway } from '../helpers/gateway.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import type { OpenedStream } from '../helpers/sse-stream.ts';
import { startRawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import type { RawSseUpstream } from '../helpers/raw-sse-upstream.ts';
import { newKey, reviewConfig } from '../helpers/review-config.ts';
import { TOOLS } from '../helpers/sse-fixtures.ts';
import {
  idsBefore as ids,
  legacyClients,
  messageEvent as event,
  messagesBefore as drain,
} from '../helpers/legacy-session.ts';

const ALICE = newKey();
const BOB = newKey();

describe('client view over the HTTP+SSE transport, two keys on one upstream', () => {
  let upstream: RawSseUpstream;
  let gateway: TestGateway;
  const opened: OpenedStream[] = [];
  let sid = 0;
  before(async () => {
    upstream = await startRawSseUpstream(() => `/legacy/messages?sid=S${++sid}`);
    gateway = await startTestGateway(
      reviewConfig(
        upstream.url,
        [
          { label: 'alice', key: ALICE, allow: ['echo'], resources: ['file:///alice/*'] },
          { label: 'bob', key: BOB, allow: ['echo', 'secret'], resources: ['file:///bob/*'] },
        ],
        '  transport: sse\nstreams:\n  keepalive: 150ms\n',
        { secret: 'c'.repeat(40), resources: [] },
      ),
    );
  });
  afterEach(() => {
    for (const s of opened.splice(0)) s.close();
  });
  after(async () => {
    await gateway.close(200);
    await upstream.close();
  });

  const { open, forwarded } = legacyClients(() => ({ gateway, upstream }), opened);

  // Not covered before: sse-transport-bytes.test.ts writes forged and unsigned tags only; this is a
  // tag the gateway really signed, for another key.
  it("held: bob's rightly signed answer written on alice's stream is dropped; on bob's it passes", async () => {
    const a = await open(ALICE);
    const b = await open(BOB);
    const { id: bobTag } = await forwarded(BOB, b.endpoint, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    a.up.res.write(event({ jsonrpc: '2.0', id: bobTag, result: { tools: TOOLS } }));
    assert.deepEqual(await drain(a.stream, a.up), []);
    b.up.res.write(event({ jsonrpc: '2.0', id: bobTag, result: { tools: TOOLS } }));
    const got = (await drain(b.stream, b.up)) as { id: number; result: { tools: { name: string }[] } }[];
    assert.deepEqual(
      got.map((m) => [m.id, m.result.tools.map((t) => t.name)]),
      [[1, ['echo', 'secret']]],
    );
  });

  it("failed before: a cancellation on one of a key's HTTP+SSE sessions named the same client id's request on another", async () => {
    // Two clients of one key (two SDK clients both number their requests from 0): each its own
    // upstream session. The second's request 1 must not take the place of the first's.
    const a1 = await open(ALICE);
    const a2 = await open(ALICE);
    const call = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } };
    const first = await forwarded(ALICE, a1.endpoint, call);
    const firstPath = upstream.posts.at(-1)!.path;
    const second = await forwarded(ALICE, a2.endpoint, call);
    assert.notEqual(upstream.posts.at(-1)!.path, firstPath, 'two upstream sessions');
    assert.notEqual(first.id, second.id);
    const cancel = (await forwarded(ALICE, a1.endpoint, {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 1, reason: 'user stopped it' },
    })) as unknown as { params: { requestId: string } };
    assert.equal(upstream.posts.at(-1)!.path, firstPath);
    assert.equal(cancel.params.requestId, first.id, "the first session's own request is cancelled");
    // And the second session's cancellation names its own.
    const other = (await forwarded(ALICE, a2.endpoint, {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 1 },
    })) as unknown as { params: { requestId: string } };
    assert.equal(other.params.requestId, second.id);
  });

  it('failed before: one answer the upstream writes twice reaches the client once', async () => {
    const a = await open(ALICE);
    const { id } = await forwarded(ALICE, a.endpoint, { jsonrpc: '2.0', id: 7, method: 'ping' });
    a.up.res.write(event({ jsonrpc: '2.0', id, result: {} }));
    a.up.res.write(event({ jsonrpc: '2.0', id, result: {} }));
    assert.deepEqual(await ids(a.stream, a.up), [7]);
    // Nor later, after other answers.
    const { id: next } = await forwarded(ALICE, a.endpoint, { jsonrpc: '2.0', id: 8, method: 'ping' });
    a.up.res.write(event({ jsonrpc: '2.0', id: next, result: {} }));
    a.up.res.write(event({ jsonrpc: '2.0', id, result: {} }));
    assert.deepEqual(await ids(a.stream, a.up), [8]);
  });

  it("failed before: an answer to one of a key's sessions does not pass on its other session", async () => {
    // Both clients number from 0: client 2 would take client 1's answer for its own request 0.
    const a1 = await open(ALICE);
    const a2 = await open(ALICE);
    const { id } = await forwarded(ALICE, a1.endpoint, { jsonrpc: '2.0', id: 0, method: 'ping' });
    await forwarded(ALICE, a2.endpoint, { jsonrpc: '2.0', id: 0, method: 'ping' });
    a2.up.res.write(event({ jsonrpc: '2.0', id, result: { crossed: true } }));
    assert.deepEqual(await ids(a2.stream, a2.up), []);
    // On its own session's stream it passes (once).
    a1.up.res.write(event({ jsonrpc: '2.0', id, result: {} }));
    assert.deepEqual(await ids(a1.stream, a1.up), [0]);
  });
});
