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
import { createStreamMatcher } from '../../../src/transport/sse/responses.ts';
import { sessionBinding } from '../../../src/transport/sse/session-ids.ts';

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

describe('integrity step: task-creating calls whose answers are not read (policy/unread-tasks.ts)', () => {
  const SLOW_CALL = '{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"slow","task":{}}}';
  const ECHO_CALL = '{"jsonrpc":"2.0","id":"e","method":"tools/call","params":{"name":"echo","task":{}}}';
  const PLAIN_CALL = '{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"slow"}}';
  const onlyEcho = compileGrants({ allow: ['echo'], prompts: [], resources: [] });

  function setUp() {
    const tasks = new TaskOwnership({ now: () => 0 });
    const step = createIntegrityStep({
      tagger,
      tasks,
      pending: new PendingTags(),
      eventIds: createEventIds(Buffer.alloc(32, 4)),
      cursors: createCursors(Buffer.alloc(32, 4)),
    });
    const post = (body: string, signedFor?: string) => {
      const parsed = parseBody(Buffer.from(body), KNOWN_METHODS);
      const ctx = {
        principal: { kind: 'key', name: 'a', keyId: 'a', bindingId: 'k:a', grants, limits: undefined },
        messages: parsed.messages,
        pinReports: undefined,
      } as unknown as RequestContext;
      const plans = new Map();
      for (const m of parsed.messages) {
        const { id, params } = m as { id?: string; params?: { name?: string; task?: unknown } };
        if (id !== undefined && params?.task !== undefined) plans.set(id, { tool: params.name });
      }
      return step.forward(ctx, parsed.bytes, plans.size === 0 ? undefined : plans, 's1', signedFor);
    };
    return { tasks, post };
  }
  /** The tags of a forwarded batch, in order, as JSON. */
  const tagsOf = (bytes: Buffer) =>
    (JSON.parse(bytes.toString()) as { id: string }[]).map((m) => JSON.stringify(m.id));

  it('counts each task-creating call forwarded, and settles it when its answer is read (a task or an error)', () => {
    const { tasks, post } = setUp();
    post(PLAIN_CALL);
    assert.equal(tasks.unread.size, 0, 'a call without a task is not counted');
    const batch = post(`[${SLOW_CALL},${ECHO_CALL},${PLAIN_CALL.replace('"p"', '"p2"')}]`);
    assert.equal(tasks.unread.size, 2);
    const [slowTag, echoTag, plainTag] = tagsOf(batch.bytes) as [string, string, string];
    assert.equal(tasks.owns('k:a', 'task-1', onlyEcho), false);
    // The slow call's task, the echo call's error, and the plain call's result, in one body.
    batch.rewrite.json(
      Buffer.from(
        `[{"jsonrpc":"2.0","id":${slowTag},"result":{"task":{"taskId":"task-1","status":"working"}}},` +
          `{"jsonrpc":"2.0","id":${echoTag},"error":{"code":-32603,"message":"no"}},` +
          `{"jsonrpc":"2.0","id":${plainTag},"result":{}}]`,
      ),
    );
    assert.equal(tasks.unread.size, 0);
    assert.equal(tasks.owns('k:a', 'task-1', grants), true, 'recorded');
    assert.equal(tasks.owns('k:a', 'task-1', onlyEcho), false, 'under slow');
  });

  it('an answer refused (a result repeated) or one whose task a client may read otherwise leaves its call unread', () => {
    const { tasks, post } = setUp();
    const refused = post(SLOW_CALL);
    const tag = JSON.stringify(idOf(refused.bytes));
    assert.throws(() =>
      refused.rewrite.json(
        Buffer.from(`{"jsonrpc":"2.0","id":${tag},"result":{"task":{"taskId":"t"}},"result":{}}`),
      ),
    );
    const variant = post(SLOW_CALL);
    const vtag = JSON.stringify(idOf(variant.bytes));
    variant.rewrite.json(Buffer.from(`{"jsonrpc":"2.0","id":${vtag},"result":{"Task":{"taskId":"t"}}}`));
    assert.equal(tasks.unread.size, 2);
    assert.equal(tasks.owns('k:a', 't', onlyEcho), false);
    assert.equal(tasks.disowns('k:a', 'any', onlyEcho), true);
  });

  it('HTTP+SSE: a call forwarded with signedFor is counted, and settled only by its answer passing on the stream', () => {
    const { tasks, post } = setUp();
    const path = '/messages?sessionId=1';
    const forwarded = post(SLOW_CALL, sessionBinding(path, 'k:a'));
    const again = post(SLOW_CALL, sessionBinding(path, 'k:a'));
    assert.equal(tasks.unread.size, 2);
    const match = createStreamMatcher(
      tagger,
      tasks,
      createCursors(Buffer.alloc(32, 4)),
    )({ kind: 'key', name: 'a', keyId: 'a', bindingId: 'k:a', grants, limits: undefined }, [path]);
    const answer = (bytes: Buffer, result: string) =>
      `{"jsonrpc":"2.0","id":${JSON.stringify(idOf(bytes))},"result":${result}}`;
    assert.equal(
      match(answer(forwarded.bytes, '{"task":{"taskId":"t"}}').replace(/}$/, ',"Result":{}}')),
      undefined,
    );
    assert.equal(tasks.unread.size, 2, 'a dropped answer settles nothing');
    const read = answer(forwarded.bytes, '{"task":{"taskId":"t"}}');
    assert.ok(match(read));
    assert.equal(tasks.unread.size, 1);
    assert.ok(match(answer(again.bytes, '{"content":[]}')), 'a result without a task settles its call');
    assert.equal(tasks.unread.size, 0);
    // A repeat is dropped, and its call is unread again: the upstream may have made a task with it
    // (an error first, then the task: filter-list.ts unreadAgain). It names its own call only.
    assert.equal(match(read), undefined, 'a repeat is dropped');
    assert.equal(tasks.unread.size, 1);
    assert.equal(match(read), undefined);
    assert.equal(tasks.unread.size, 1, 'held once');
  });
});
