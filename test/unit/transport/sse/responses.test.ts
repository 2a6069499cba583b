/**
 * Responses on an HTTP+SSE GET stream (src/transport/sse/responses.ts): matched by the request tag
 * signed for the stream's principal, given the client's id back, filtered by the tag's plan;
 * anything else is dropped (undefined), never replaced by an error event.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal } from '../../../../src/auth/principal.ts';
import { createRequestTagger } from '../../../../src/integrity/request-tag.ts';
import { compileGrants } from '../../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../../src/policy/tasks.ts';
import { createCursors } from '../../../../src/integrity/cursors.ts';
import { createStreamMatcher } from '../../../../src/transport/sse/responses.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 7));
const principal = (bindingId: string): Principal => ({
  kind: 'key',
  name: bindingId,
  keyId: bindingId,
  bindingId,
  grants: compileGrants({ allow: ['echo'], prompts: [], resources: [] }),
  limits: undefined,
});
const alice = principal('alice');
const matcher = createStreamMatcher(
  tagger,
  new TaskOwnership({ now: () => 0 }),
  createCursors(Buffer.alloc(32, 9)),
);
const TOOLS = [{ name: 'echo' }, { name: 'secret' }];
const answer = (id: unknown, result: unknown = { tools: TOOLS }) =>
  JSON.stringify({ jsonrpc: '2.0', id, result });

describe('HTTP+SSE stream responses', () => {
  it("gives a tagged response the client's id back and filters the list its tag names", () => {
    const match = matcher(alice);
    const out = match(answer(tagger.tag('alice', 7, 'tools')));
    assert.ok(out);
    assert.equal(out.filtered, true);
    assert.deepEqual(JSON.parse(out.data), { jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'echo' }] } });
    const plain = match(answer(tagger.tag('alice', 'x', 'none'), { content: [] }));
    assert.deepEqual(plain, { data: answer('x', { content: [] }), filtered: false });
  });

  it('security: drops a response with no tag, a forged tag, or a tag signed for another key', () => {
    const match = matcher(alice);
    const tag = tagger.tag('alice', 1, 'tools');
    for (const id of [
      1,
      '1',
      `${tag.slice(0, -1)}${tag.endsWith('A') ? 'B' : 'A'}`,
      tagger.tag('bob', 1, 'tools'),
    ]) {
      assert.equal(match(answer(id)), undefined, String(id));
    }
    assert.equal(match(`[${answer(tag)},${answer(2)}]`), undefined, 'a batch with one unasked answer');
  });

  it('passes server requests and notifications; drops data that is not a JSON-RPC message', () => {
    const match = matcher(alice);
    const note = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}';
    const ask = '{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}';
    assert.deepEqual(match(note), { data: note, filtered: false });
    assert.deepEqual(match(ask), { data: ask, filtered: false });
    for (const data of ['not json', '42', '[]', '{"jsonrpc":"2.0","id":9,"method":"x","result":{}}']) {
      assert.equal(match(data), undefined, data);
    }
  });
});
