/**
 * The pipeline's integrity step (src/integrity/step.ts): a POST's requests are tagged, their
 * responses matched once, and a request's pending cancellation is forgotten when it is answered.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import { parseBody } from '../../../src/jsonrpc/parse.ts';
import { KNOWN_METHODS } from '../../../src/policy/methods.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { TaskOwnership } from '../../../src/policy/tasks.ts';
import type { RequestContext } from '../../../src/pipeline/context.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import { PendingTags } from '../../../src/integrity/cancels.ts';
import { createIntegrityStep, inSession } from '../../../src/integrity/step.ts';
import { createEventIds } from '../../../src/integrity/event-ids.ts';
import { createCursors } from '../../../src/integrity/cursors.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 4));
const grants = compileGrants({ allow: ['*'], prompts: [], resources: [] });

function setUp() {
  const pending = new PendingTags();
  const step = createIntegrityStep({
    tagger,
    tasks: new TaskOwnership({ now: () => 0 }),
    pending,
    eventIds: createEventIds(Buffer.alloc(32, 4)),
    cursors: createCursors(Buffer.alloc(32, 4)),
  });
  const post = (body: string, sessionId = 's1') => {
    const parsed = parseBody(Buffer.from(body), KNOWN_METHODS);
    const ctx = {
      principal: {
        kind: 'anonymous',
        name: 'a',
        keyId: undefined,
        bindingId: 'k:a',
        grants,
        limits: undefined,
      },
      messages: parsed.messages,
      pinReports: undefined,
    } as unknown as RequestContext;
    return step.forward(ctx, parsed.bytes, undefined, sessionId);
  };
  return { pending, post };
}

const idOf = (bytes: Buffer) => (JSON.parse(bytes.toString()) as { id: string }).id;
const cancel = (requestId: string) =>
  `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${JSON.stringify(requestId)}}}`;
const namedBy = (bytes: Buffer) =>
  (JSON.parse(bytes.toString()) as { params: { requestId: string } }).params.requestId;

describe('integrity step', () => {
  it('names the forwarded tag in a cancellation until the request is answered, then forgets it', () => {
    const { pending, post } = setUp();
    const call = post('{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"slow"}}');
    const tag = idOf(call.bytes);
    assert.equal(namedBy(post(cancel('c1')).bytes), tag);
    assert.equal(pending.size, 1);
    const answer = `{"result":{},"jsonrpc":"2.0","id":${JSON.stringify(tag)}}`;
    assert.equal(
      call.rewrite.json(Buffer.from(answer)).toString(),
      '{"result":{},"jsonrpc":"2.0","id":"c1"}',
    );
    assert.equal(pending.size, 0);
    // Answered: a late cancellation names a fresh tag no request has (the upstream ignores it).
    const late = namedBy(post(cancel('c1')).bytes);
    assert.notEqual(late, tag);
    // Signed for the key in its upstream session (step.ts inSession), not for the key alone.
    assert.equal(tagger.untag(inSession('k:a', 's1') as string, late)?.clientId, 'c1');
    assert.equal(tagger.untag('k:a', late), undefined);
    // And the same response again is refused.
    assert.throws(
      () => call.rewrite.json(Buffer.from(answer)),
      (err: unknown) => isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL',
    );
  });

  it('forgets only the answered request when the client reuses its id in a newer one', () => {
    const { pending, post } = setUp();
    const first = post('{"jsonrpc":"2.0","id":1,"method":"ping"}');
    const second = post('{"jsonrpc":"2.0","id":1,"method":"ping"}');
    const newer = idOf(second.bytes);
    first.rewrite.json(
      Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(idOf(first.bytes))},"result":{}}`),
    );
    assert.equal(pending.tagFor('k:a', 's1', 1), newer);
    second.rewrite.json(Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(newer)},"result":{}}`));
    assert.equal(pending.size, 0);
  });
});
