/**
 * Responses on an HTTP+SSE GET stream (src/transport/sse/responses.ts, session-ids.ts): matched by
 * the request tag signed for the stream's principal and upstream session, answered once, given the
 * client's id back, filtered by the tag's plan; anything else is dropped (undefined), never replaced
 * by an error event.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal } from '../../../../src/auth/principal.ts';
import { createRequestTagger } from '../../../../src/integrity/request-tag.ts';
import { compileGrants } from '../../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../../src/policy/tasks.ts';
import { createCursors } from '../../../../src/integrity/cursors.ts';
import { createStreamMatcher } from '../../../../src/transport/sse/responses.ts';
import { MAX_ANSWERED, MAX_ENDPOINTS, sessionBinding } from '../../../../src/transport/sse/session-ids.ts';

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
/** The stream's upstream endpoint, and a tag for a request POSTed there by `bindingId`. */
const PATH = '/messages?sessionId=1';
const tag = (bindingId: string, id: number | string, plan: 'tools' | 'none', path = PATH) =>
  tagger.tag(sessionBinding(path, bindingId), id, plan);
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
    const match = matcher(alice, [PATH]);
    const out = match(answer(tag('alice', 7, 'tools')));
    assert.ok(out);
    assert.equal(out.filtered, true);
    assert.deepEqual(JSON.parse(out.data), { jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'echo' }] } });
    const plain = match(answer(tag('alice', 'x', 'none'), { content: [] }));
    assert.deepEqual(plain, { data: answer('x', { content: [] }), filtered: false });
  });

  it('security: drops a response with no tag, a forged tag, or a tag signed for another key or session', () => {
    const match = matcher(alice, [PATH]);
    const own = tag('alice', 1, 'tools');
    for (const id of [
      1,
      '1',
      `${own.slice(0, -1)}${own.endsWith('A') ? 'B' : 'A'}`,
      tag('bob', 1, 'tools'),
      tag('alice', 1, 'tools', '/messages?sessionId=2'),
      // Signed for the principal alone, as Streamable HTTP signs them.
      tagger.tag('alice', 1, 'tools'),
    ]) {
      assert.equal(match(answer(id)), undefined, String(id));
    }
    assert.equal(match(`[${answer(own)},${answer(2)}]`), undefined, 'a batch with one unasked answer');
  });

  it('security: passes one answer per tag; a repeat is dropped until MAX_ANSWERED later ones', () => {
    const match = matcher(alice, [PATH]);
    const first = tag('alice', 1, 'none');
    assert.ok(match(answer(first, {})));
    assert.equal(match(answer(first, {})), undefined, 'again at once');
    const second = tag('alice', 2, 'none');
    assert.equal(match(`[${answer(second, {})},${answer(first, {})}]`), undefined, 'in a batch');
    // The batch was dropped whole, so it answered nothing: its other answer may still come.
    assert.ok(match(answer(second, {})), 'a dropped event answers nothing');
    assert.equal(match(`[${answer(tag('alice', 3, 'none'), {})},${answer(second, {})}]`), undefined);
    for (let i = 0; i < MAX_ANSWERED - 2; i++) assert.ok(match(answer(tag('alice', i, 'none'), {})));
    assert.equal(match(answer(first, {})), undefined, 'still remembered');
    assert.ok(match(answer(tag('alice', 'last', 'none'), {})));
    assert.ok(match(answer(first, {})), 'forgotten once MAX_ANSWERED others came after it');
  });

  it("takes answers for the stream's last MAX_ENDPOINTS endpoints, as they are issued", () => {
    const paths: string[] = [];
    const match = matcher(alice, paths);
    assert.equal(match(answer(tag('alice', 1, 'none', '/e0'), {})), undefined, 'before any endpoint');
    for (let i = 0; i <= MAX_ENDPOINTS; i++) paths.push(`/e${i}`);
    assert.equal(match(answer(tag('alice', 1, 'none', '/e0'), {})), undefined, 'older than the last four');
    for (let i = 1; i <= MAX_ENDPOINTS; i++) assert.ok(match(answer(tag('alice', i, 'none', `/e${i}`), {})));
  });

  it('passes server requests and notifications; drops data that is not a JSON-RPC message', () => {
    const match = matcher(alice, [PATH]);
    const note = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}';
    const ask = '{"jsonrpc":"2.0","id":9,"method":"sampling/createMessage","params":{}}';
    assert.deepEqual(match(note), { data: note, filtered: false });
    assert.deepEqual(match(ask), { data: ask, filtered: false });
    for (const data of ['not json', '42', '[]', '{"jsonrpc":"2.0","id":9,"method":"x","result":{}}']) {
      assert.equal(match(data), undefined, data);
    }
  });
});
