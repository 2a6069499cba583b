/**
 * Tagging a judged body (src/integrity/restore.ts tagRequests): the forwarded bytes are the judged
 * serialisation with each request's id replaced by its tag and nothing else changed, whichever
 * path finds the id (the single-message splice where JSON.stringify put the id, or the text walk).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JsonRpcId, JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import { tagRequests } from '../../../src/integrity/restore.ts';
import { PendingTags } from '../../../src/integrity/cancels.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 5));

/** Tags a body as the pipeline does: parsed strictly, its canonical bytes and messages. */
function tagBody(body: string, pending = new PendingTags(), sessionId: string | undefined = 's1') {
  const parsed = parseBody(Buffer.from(body), KNOWN_METHODS);
  const forwarded = tagRequests(parsed.bytes, parsed.messages, new Map([[7, 'tools']]), {
    tagger,
    bindingId: 'key-a',
    sessionId,
    pending,
  });
  return { parsed, forwarded, pending };
}

/** The judged serialisation with each request's id swapped for the tag it was given. */
function expected(messages: readonly JsonRpcMessage[], batch: boolean, tags: string[]): string {
  let next = 0;
  const swapped = messages.map((m) =>
    'method' in m && 'id' in m ? { ...m, id: tags[next++] } : (m as unknown as Record<string, unknown>),
  );
  return JSON.stringify(batch ? swapped : swapped[0]);
}

const ID_SPELLINGS: JsonRpcId[] = [0, 7, -42, 9007199254740991, '', 'c1', 'a"b\\c', 'héllo ✓ 𝄞', '\n'];

describe('tagging requests', () => {
  it('replaces only the id, wherever the client put it, for every id spelling', () => {
    for (const id of ID_SPELLINGS) {
      const idJson = JSON.stringify(id);
      const bodies = [
        // First, second after jsonrpc (the Python SDK's order), last (the TypeScript SDK's), middle.
        `{"id":${idJson},"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"id":1}}}`,
        `{"jsonrpc":"2.0","id":${idJson},"method":"tools/call","params":{"name":"echo"}}`,
        `{"method":"tools/call","params":{"name":"echo","id":"x"},"jsonrpc":"2.0","id":${idJson}}`,
        `{"method":"tools/call","id":${idJson},"params":{"name":"echo"},"jsonrpc":"2.0"}`,
        `{"jsonrpc":"2.0","id":${idJson},"method":"ping"}`,
        `{"id":${idJson},"jsonrpc":"2.0","method":"ping"}`,
        // A batch of one.
        `[{"jsonrpc":"2.0","id":${idJson},"method":"ping"}]`,
      ];
      for (const body of bodies) {
        const { parsed, forwarded } = tagBody(body);
        const sent = JSON.parse(forwarded.bytes.toString()) as { id: string } | { id: string }[];
        const tag = (Array.isArray(sent) ? sent[0]! : sent).id;
        assert.equal(forwarded.bytes.toString(), expected(parsed.messages, parsed.batch, [tag]), body);
        const plan = id === 7 ? 'tools' : 'none';
        assert.deepEqual([...forwarded.tags.keys()], [tag]);
        assert.deepEqual(forwarded.tags.get(tag), {
          clientId: id,
          plan,
          pending: forwarded.tags.get(tag)?.pending,
        });
        assert.deepEqual(tagger.untag('key-a', tag), { clientId: id, plan: id === 7 ? 'tools' : 'none' });
      }
    }
  });

  it('keeps the client\u2019s own spacing when its bytes are forwarded, replacing only the id', () => {
    for (const body of [
      '{ "jsonrpc": "2.0", "id": 12, "method": "ping" }',
      '{"jsonrpc":"2.0","method":"ping","id" : "a b"}',
      '{"id":12 ,"jsonrpc":"2.0","method":"ping"}',
      '{"method":"ping","jsonrpc":"2.0","id":12\n}',
    ]) {
      const { parsed, forwarded } = tagBody(body);
      const tag = (JSON.parse(forwarded.bytes.toString()) as { id: string }).id;
      const id = JSON.stringify((parsed.messages[0] as { id: JsonRpcId }).id);
      const judged = parsed.bytes.toString();
      assert.equal(forwarded.bytes.toString(), judged.replace(id, JSON.stringify(tag)), body);
    }
  });

  it('forwards a notification or a response to the upstream as judged, with no tag', () => {
    for (const body of [
      '{"jsonrpc":"2.0","method":"notifications/initialized"}',
      '{"jsonrpc":"2.0","id":"up-1","result":{"roots":[]}}',
      '{"id":3,"jsonrpc":"2.0","error":{"code":-1,"message":"no"}}',
    ]) {
      const { parsed, forwarded } = tagBody(body);
      assert.equal(forwarded.bytes, parsed.bytes, body);
      assert.equal(forwarded.tags.size, 0);
    }
  });

  it('tags each request of a batch; a cancellation names the tag its request was forwarded under', () => {
    const pending = new PendingTags();
    const call = tagBody(
      '{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"slow"}}',
      pending,
    );
    const tag = (JSON.parse(call.forwarded.bytes.toString()) as { id: string }).id;
    const batch = tagBody(
      '[{"jsonrpc":"2.0","id":7,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1"}},{"jsonrpc":"2.0","id":8,"method":"ping"}]',
      pending,
    );
    const sent = JSON.parse(batch.forwarded.bytes.toString()) as Record<string, unknown>[];
    const tags = [sent[0]!.id as string, sent[2]!.id as string];
    assert.deepEqual(sent[1], {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: tag },
    });
    const swapped = JSON.parse(expected(batch.parsed.messages, true, tags)) as Record<string, unknown>[];
    swapped[1] = sent[1]!;
    assert.equal(batch.forwarded.bytes.toString(), JSON.stringify(swapped));
    assert.deepEqual(tagger.untag('key-a', tags[0]), { clientId: 7, plan: 'tools' });
    // A cancellation alone (the single-message path) names it too; in another session it does not.
    const alone = '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c1"}}';
    const named = (body: ReturnType<typeof tagBody>) =>
      (JSON.parse(body.forwarded.bytes.toString()) as { params: { requestId: string } }).params.requestId;
    assert.equal(named(tagBody(alone, pending)), tag);
    const elsewhere = named(tagBody(alone, pending, 's2'));
    assert.notEqual(elsewhere, tag);
    assert.equal(tagger.untag('key-a', elsewhere)?.clientId, 'c1');
  });

  it('never splices blindly: bytes that do not match the messages take the walk, or are refused', () => {
    const parsed = parseBody(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}'), KNOWN_METHODS);
    const context = { tagger, bindingId: 'key-a', sessionId: undefined, pending: undefined };
    // A longer id where the messages' id would be: a splice of one character would leave "23" behind.
    const longer = tagRequests(
      Buffer.from('{"jsonrpc":"2.0","id":123,"method":"ping"}'),
      parsed.messages,
      undefined,
      context,
    );
    assert.match(longer.bytes.toString(), /^\{"jsonrpc":"2\.0","id":"g1n[^"]+","method":"ping"\}$/);
    // No id at all: the gateway did not write these bytes from these messages.
    assert.throws(
      () =>
        tagRequests(Buffer.from('{"jsonrpc":"2.0","method":"ping"}'), parsed.messages, undefined, context),
      TypeError,
    );
  });
});
