/**
 * Response matching (src/integrity/match.ts): a response passes only with an id the gateway forwarded
 * in that exchange (or, on a GET stream, signed for the principal), gets the client's id back, and is
 * filtered by the plan its tag carries.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';
import type { JsonRpcId } from '../../../src/jsonrpc/message.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { UNREADABLE } from '../../../src/policy/unreadable.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import type { Plan } from '../../../src/integrity/request-tag.ts';
import {
  createMatchRewrite,
  MatchRewrite,
  exchangeIds,
  exchangeIdsOf,
  matchEventData,
  signedIds,
  tagRequests,
} from '../../../src/integrity/match.ts';
import { PendingTags } from '../../../src/integrity/cancels.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 1));
const grants = compileGrants({ allow: ['echo'], prompts: [], resources: [] });
const filters = { grants, tasks: undefined };
const TOOLS = [{ name: 'secret_admin' }, { name: 'echo' }];
const listOf = (id: unknown) => JSON.stringify({ jsonrpc: '2.0', id, result: { tools: TOOLS } });
const refused = (err: unknown) => isGatewayError(err) && err.code === 'ERR_UPSTREAM_PROTOCOL';

/** Tags one exchange's requests as the pipeline does; returns the rewrite and the tags by client id. */
function exchange(requests: [JsonRpcId, string, Plan][], bindingId = 'key-a') {
  const messages = requests.map(([id, method]) => ({ jsonrpc: '2.0' as const, id, method }));
  const bytes = Buffer.from(JSON.stringify(messages.length === 1 ? messages[0] : messages));
  const plans = new Map(requests.map(([id, , plan]) => [id, plan]));
  const forwarded = tagRequests(bytes, messages, plans, {
    tagger,
    bindingId,
    sessionId: undefined,
    pending: undefined,
  });
  const sent = JSON.parse(forwarded.bytes.toString()) as { id: string } | { id: string }[];
  const tags = (Array.isArray(sent) ? sent : [sent]).map((m) => m.id);
  return { rewrite: createMatchRewrite(exchangeIds(forwarded.tags), filters), tags, sent };
}

const sseOnce = (rewrite: ReturnType<typeof exchange>['rewrite'], data: string) => {
  const sse = rewrite.sse();
  return Buffer.concat([...sse.push(Buffer.from(`id: 1\ndata: ${data}\n\n`)), ...sse.end()]).toString();
};

describe('response matching', () => {
  it('restores the client id and filters the list its tag planned (JSON and SSE)', () => {
    const { rewrite, tags } = exchange([['list-1', 'tools/list', 'tools']]);
    const out = JSON.parse(rewrite.json(Buffer.from(listOf(tags[0]))).toString());
    assert.deepEqual(out, { jsonrpc: '2.0', id: 'list-1', result: { tools: [{ name: 'echo' }] } });
    const sse = exchange([[7, 'tools/list', 'tools']]);
    const event = sseOnce(sse.rewrite, listOf(sse.tags[0]));
    assert.equal(event, `id: 1\ndata: {"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"echo"}]}}\n\n`);
  });

  it('an id-mismatched list response is refused: JSON 502, SSE error event, batch whole', () => {
    const { rewrite, tags } = exchange([['list-1', 'tools/list', 'tools']]);
    // The client's own id echoed back, an id of another request, a tag with another plan.
    for (const id of ['list-1', 'other', tagger.tag('key-a', 'list-1', 'none'), null, 1]) {
      assert.throws(() => rewrite.json(Buffer.from(listOf(id))), refused, String(id));
      assert.equal(sseOnce(rewrite, listOf(id)), `id: 1\ndata: ${UNREADABLE}\n\n`);
    }
    // A batch with one good response and one foreign one is refused whole.
    const batch = exchange([
      [1, 'tools/list', 'tools'],
      [2, 'ping', 'none'],
    ]);
    const bad = `[${listOf(batch.tags[0])},{"jsonrpc":"2.0","id":"zzz","result":{}}]`;
    assert.throws(() => batch.rewrite.json(Buffer.from(bad)), refused);
    assert.ok(tags[0]?.startsWith('g1t'));
  });

  it('a response to a request never forwarded in this exchange is refused, even one signed for the key', () => {
    const first = exchange([[1, 'tools/list', 'tools']]);
    const second = exchange([[2, 'ping', 'none']]);
    // The upstream answers the second exchange with the first one's (validly signed) response.
    assert.throws(() => second.rewrite.json(Buffer.from(listOf(first.tags[0]))), refused);
    // And one request is answered once.
    const once = exchange([[3, 'tools/list', 'tools']]);
    const body = Buffer.from(`[${listOf(once.tags[0])},${listOf(once.tags[0])}]`);
    assert.throws(() => once.rewrite.json(body), refused);
  });

  it('answers each tag of an exchange once, across JSON bodies and SSE events alike', () => {
    const tags = new Map(
      [1, 2, 3].map((n) => [tagger.tag('key-a', n, 'none'), { clientId: n, plan: 'none' as const }]),
    );
    const told: JsonRpcId[] = [];
    const ids = exchangeIds(tags, (_tag, untagged) => told.push(untagged.clientId));
    const [t1, t2, t3] = [...tags.keys()] as [string, string, string];
    assert.equal(ids.answer('g1nforeign.n1.AAAAAAAAAAAAAAAA'), undefined);
    assert.equal(ids.answer(t2)?.clientId, 2);
    assert.equal(ids.answer(t2), undefined);
    assert.equal(ids.answer(t1)?.clientId, 1);
    assert.equal(ids.answer(t2), undefined);
    assert.equal(ids.answer(t1), undefined);
    assert.equal(ids.answer(t3)?.clientId, 3);
    assert.equal(ids.answer(t3), undefined);
    assert.deepEqual(told, [2, 1, 3]);
    // A notification may still name an answered request (a late cancellation).
    assert.equal(ids.name(t1)?.clientId, 1);
    // Through the rewrite: the second response to one request is refused, JSON or SSE.
    const { rewrite, tags: sent } = exchange([[9, 'tools/call', 'none']]);
    const answer = `{"jsonrpc":"2.0","id":"${sent[0]}","result":{}}`;
    assert.equal(rewrite.json(Buffer.from(answer)).toString(), '{"jsonrpc":"2.0","id":9,"result":{}}');
    assert.throws(() => rewrite.json(Buffer.from(answer)), refused);
    assert.equal(sseOnce(rewrite, answer), `id: 1\ndata: ${UNREADABLE}\n\n`);
  });

  it('two concurrent requests with the same client id cannot receive each other\u2019s response', () => {
    const a = exchange([[1, 'tools/list', 'tools']]);
    const b = exchange([[1, 'prompts/list', 'prompts']]);
    assert.notEqual(a.tags[0], b.tags[0]);
    assert.throws(() => b.rewrite.json(Buffer.from(listOf(a.tags[0]))), refused);
  });

  it('changes only the id bytes: numbers a double cannot hold and key order pass exactly', () => {
    const { rewrite, tags } = exchange([[5, 'tools/call', 'none']]);
    const body = `{"result":{"n":12345678901234567890,"x":1e400,"z":-0},"jsonrpc":"2.0","id":${JSON.stringify(tags[0])}}`;
    assert.equal(
      rewrite.json(Buffer.from(body)).toString(),
      '{"result":{"n":12345678901234567890,"x":1e400,"z":-0},"jsonrpc":"2.0","id":5}',
    );
  });

  it('reads keys as JSON.parse does: an escaped id key is restored, a duplicated one refused', () => {
    const { rewrite, tags } = exchange([[5, 'tools/call', 'none']]);
    const escaped = `{"jsonrpc":"2.0","\\u0069d":${JSON.stringify(tags[0])},"result":{}}`;
    assert.deepEqual(JSON.parse(rewrite.json(Buffer.from(escaped)).toString()), {
      jsonrpc: '2.0',
      id: 5,
      result: {},
    });
    const again = exchange([[6, 'tools/call', 'none']]);
    const dup = `{"jsonrpc":"2.0","id":${JSON.stringify(again.tags[0])},"id":${JSON.stringify(again.tags[0])},"result":{}}`;
    assert.throws(() => again.rewrite.json(Buffer.from(dup)), refused);
  });

  it('restores ids exactly in ASCII bodies (spliced as bytes) and in any other (re-encoded text)', () => {
    const cases: [JsonRpcId, string][] = [
      ['héllo ✓ 𝄞', 'ascii'],
      [12, 'ascii'],
      ['a"b', 'ascii'],
      [12, 'non-ascii ✓ 𝄞'],
      ['héllo', 'non-ascii é'],
    ];
    for (const [clientId, text] of cases) {
      const { rewrite, tags } = exchange([[clientId, 'tools/call', 'none']]);
      const body = (id: unknown) =>
        `{"result":{"content":[{"type":"text","text":"${text}"}]},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;
      assert.equal(
        rewrite.json(Buffer.from(body(tags[0]))).toString(),
        body(clientId),
        `${clientId} ${text}`,
      );
    }
    // A byte order mark is dropped with the decoding, as before.
    const { rewrite, tags } = exchange([[1, 'ping', 'none']]);
    const bom = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(`{"jsonrpc":"2.0","id":"${tags[0]}","result":{}}`),
    ]);
    assert.equal(rewrite.json(bom).toString(), '{"jsonrpc":"2.0","id":1,"result":{}}');
    // Several ids in one batch, in any order of the responses, each restored in place.
    const batch = exchange([
      [1, 'ping', 'none'],
      ['two', 'ping', 'none'],
    ]);
    const answer = `[ {"id":"${batch.tags[1]}","jsonrpc":"2.0","result":{}} , {"jsonrpc":"2.0","result":{"x":1},"id":"${batch.tags[0]}"} ]`;
    assert.equal(
      batch.rewrite.json(Buffer.from(answer)).toString(),
      `[ {"id":"two","jsonrpc":"2.0","result":{}} , {"jsonrpc":"2.0","result":{"x":1},"id":1} ]`,
    );
  });

  it('passes requests from the upstream and errors that name no request; refuses a result without id', () => {
    const { rewrite } = exchange([[5, 'tools/call', 'none']]);
    const sampling = '{"jsonrpc":"2.0","id":0,"method":"sampling/createMessage","params":{}}';
    assert.equal(matchEventData(sampling, exchangeIds(new Map()), filters), undefined);
    const nullError = '{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request"}}';
    assert.equal(rewrite.json(Buffer.from(nullError)).toString(), nullError);
    assert.throws(() => rewrite.json(Buffer.from('{"jsonrpc":"2.0","result":{}}')), refused);
    assert.throws(() => rewrite.json(Buffer.from('not json')), refused);
    assert.equal(rewrite.json(Buffer.alloc(0)).length, 0);
  });
});

describe('GET streams: the signed plan of each response', () => {
  const stream = createMatchRewrite(signedIds(tagger, 'key-a'), filters);
  const replay = (data: string) => {
    const sse = stream.sse();
    return Buffer.concat([...sse.push(Buffer.from(`id: 9\ndata: ${data}\n\n`)), ...sse.end()]).toString();
  };
  const dataOf = (event: string) => JSON.parse(/^data: (.*)$/m.exec(event)![1]!) as Record<string, unknown>;

  it('filters a replayed list as its request planned, with the client id back', () => {
    const tag = tagger.tag('key-a', 'list-1', 'tools');
    assert.deepEqual(dataOf(replay(listOf(tag))), {
      jsonrpc: '2.0',
      id: 'list-1',
      result: { tools: [{ name: 'echo' }] },
    });
  });

  it('escaped keys on a resumed GET stream are judged like plain ones ("res\\u0075lt")', () => {
    const tag = tagger.tag('key-a', 'list-1', 'tools');
    const escaped = `{"jsonrpc":"2.0","id":${JSON.stringify(tag)},"res\\u0075lt":{"t\\u006fols":${JSON.stringify(TOOLS)}}}`;
    assert.deepEqual(dataOf(replay(escaped)), {
      jsonrpc: '2.0',
      id: 'list-1',
      result: { tools: [{ name: 'echo' }] },
    });
  });

  it('refuses a response signed for another key, or not signed', () => {
    for (const id of [tagger.tag('key-b', 'list-1', 'tools'), 'list-1', 3]) {
      assert.equal(replay(listOf(id)), `id: 9\ndata: ${UNREADABLE}\n\n`);
    }
  });

  it('does not filter a response whose request planned nothing (a tool result holding a `tools` field)', () => {
    const tag = tagger.tag('key-a', 4, 'none');
    assert.deepEqual(dataOf(replay(listOf(tag))), { jsonrpc: '2.0', id: 4, result: { tools: TOOLS } });
  });

  it('translates a cancelled request id; never lets a gateway id it cannot translate through', () => {
    const cancelled = (requestId: unknown) =>
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId } });
    const tag = tagger.tag('key-a', 'c-1', 'none');
    assert.deepEqual(dataOf(replay(cancelled(tag))), JSON.parse(cancelled('c-1')));
    // The upstream cancelling its own request (its id) passes; another key's tag does not.
    assert.equal(replay(cancelled(3)), `id: 9\ndata: ${cancelled(3)}\n\n`);
    assert.equal(replay(cancelled(tagger.tag('key-b', 'c-1', 'none'))), `id: 9\ndata: ${UNREADABLE}\n\n`);
    // On a POST stream, a tag of another exchange is not translated, so it is refused too.
    const { rewrite } = exchange([[1, 'tools/call', 'none']]);
    assert.equal(sseOnce(rewrite, cancelled(tag)), `id: 1\ndata: ${UNREADABLE}\n\n`);
  });

  it('translates a subscription id; refuses one the gateway did not issue', () => {
    const tag = tagger.tag('key-a', 'sub-1', 'none');
    const note = (id: unknown) =>
      JSON.stringify({
        jsonrpc: '2.0',
        method: 'notifications/tools/list_changed',
        params: { _meta: { 'io.modelcontextprotocol/subscriptionId': id } },
      });
    assert.deepEqual(dataOf(replay(note(tag))), JSON.parse(note('sub-1')));
    assert.equal(replay(note('sub-1')), `id: 9\ndata: ${UNREADABLE}\n\n`);
  });
});

describe('tagging requests', () => {
  it('tags each request, leaves responses to the upstream alone, translates a cancellation', () => {
    const pending = new PendingTags();
    const context = { tagger, bindingId: 'key-a', sessionId: 's1', pending };
    const call = { jsonrpc: '2.0' as const, id: 'c1', method: 'tools/call', params: { name: 'slow' } };
    const first = tagRequests(Buffer.from(JSON.stringify(call)), [call], undefined, context);
    const tag = (JSON.parse(first.bytes.toString()) as { id: string }).id;
    assert.deepEqual(first.tags.get(tag), {
      clientId: 'c1',
      plan: 'none',
      pending: first.tags.get(tag)?.pending,
    });
    assert.equal(pending.size, 1);
    const messages = [
      {
        jsonrpc: '2.0' as const,
        method: 'notifications/cancelled',
        params: { requestId: 'c1', reason: 'x' },
      },
      { jsonrpc: '2.0' as const, id: 0, result: {} },
    ];
    const second = tagRequests(Buffer.from(JSON.stringify(messages)), messages, undefined, context);
    assert.equal(
      second.bytes.toString(),
      `[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":${JSON.stringify(tag)},"reason":"x"}},{"jsonrpc":"2.0","id":0,"result":{}}]`,
    );
    // Another session's cancellation of "c1" does not name this request.
    const other = tagRequests(Buffer.from(JSON.stringify(messages[0])), [messages[0]!], undefined, {
      ...context,
      sessionId: 's2',
    });
    const named = (JSON.parse(other.bytes.toString()) as { params: { requestId: string } }).params.requestId;
    assert.notEqual(named, tag);
    assert.equal(tagger.untag('key-a', named)?.clientId, 'c1');
  });
});

describe('the ids of a one-request exchange', () => {
  it('answer as the map of its one tag does: once, by that tag only, sole while unanswered and planning nothing', () => {
    for (const plan of ['none', 'tools'] as const) {
      const message = {
        jsonrpc: '2.0' as const,
        id: 3,
        method: plan === 'none' ? 'tools/call' : 'tools/list',
      };
      const forwarded = tagRequests(Buffer.from(JSON.stringify(message)), [message], new Map([[3, plan]]), {
        tagger,
        bindingId: 'key-a',
        sessionId: undefined,
        pending: undefined,
      });
      assert.ok(forwarded.sole !== undefined && forwarded.soleEntry !== undefined, 'the one-request path');
      const tag = forwarded.sole;
      const toldA: unknown[] = [];
      const toldB: unknown[] = [];
      const a = exchangeIdsOf(forwarded, (t, u) => toldA.push([t, u.clientId]));
      const b = exchangeIds(forwarded.tags, (t, u) => toldB.push([t, u.clientId]), tag);
      for (const ids of [a, b]) assert.equal(ids.sole?.(), plan === 'none' ? tag : undefined);
      for (const id of [tag + 'x', 'other', tag, tag, '']) {
        assert.deepEqual(a.name(id), b.name(id), `name ${id}`);
        assert.deepEqual(a.answer(id), b.answer(id), `answer ${id}`);
        assert.equal(a.sole?.(), b.sole?.(), `sole after ${id}`);
      }
      assert.deepEqual(toldA, toldB);
      assert.deepEqual(toldA, [[tag, 3]]);
    }
  });
});

describe('what a stream owes at its end', () => {
  /** An exchange whose rewrite seals event ids (as the pipeline's does) and records refusals. */
  function sealedExchange(requests: [JsonRpcId, string, Plan][]) {
    const messages = requests.map(([id, method]) => ({ jsonrpc: '2.0' as const, id, method }));
    const bytes = Buffer.from(JSON.stringify(messages.length === 1 ? messages[0] : messages));
    const forwarded = tagRequests(bytes, messages, new Map(requests.map(([id, , p]) => [id, p])), {
      tagger,
      bindingId: 'key-a',
      sessionId: undefined,
      pending: undefined,
    });
    const sent = JSON.parse(forwarded.bytes.toString()) as { id: string } | { id: string }[];
    const tags = (Array.isArray(sent) ? sent : [sent]).map((m) => m.id);
    const ctx = { refused: 0 };
    const rewrite = new MatchRewrite(exchangeIds(forwarded.tags), () => filters, ctx, {
      onRefused: (c) => c.refused++,
      eventIds: () => (id) => `${id}.sealed`,
    });
    return { rewrite, tags, ctx };
  }
  const run = (rewrite: MatchRewrite<{ refused: number }>, input: string) => {
    const sse = rewrite.sse();
    return Buffer.concat([...sse.push(Buffer.from(input)), ...sse.end()]).toString();
  };
  const owed = (id: JsonRpcId) =>
    `data: {"jsonrpc":"2.0","id":${JSON.stringify(id)},"error":{"code":-32002,"message":"upstream ended the stream without an answer"}}\n\n`;

  it('answers each request left unanswered by a stream that ended empty, and says so', () => {
    const { rewrite, ctx } = sealedExchange([
      ['a', 'tools/call', 'none'],
      [2, 'ping', 'none'],
    ]);
    assert.equal(run(rewrite, ''), owed('a') + owed(2));
    assert.equal(ctx.refused, 1);
  });

  it('owes nothing once every request is answered, nor after an event id the client resumes at (a priming event)', () => {
    const answered = sealedExchange([['a', 'tools/call', 'none']]);
    const result = `data: {"jsonrpc":"2.0","id":"${answered.tags[0]}","result":{}}\n\n`;
    assert.equal(run(answered.rewrite, result), 'data: {"jsonrpc":"2.0","id":"a","result":{}}\n\n');
    assert.equal(answered.ctx.refused, 0);
    const polled = sealedExchange([['b', 'tools/call', 'none']]);
    assert.equal(run(polled.rewrite, 'id: p0\ndata: \n\n'), 'id: p0.sealed\ndata: \n\n');
    assert.equal(polled.ctx.refused, 0);
    const progress =
      'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n';
    const busy = sealedExchange([['c', 'tools/call', 'none']]);
    assert.equal(run(busy.rewrite, `id: p1\ndata: \n\n${progress}`), `id: p1.sealed\ndata: \n\n${progress}`);
    assert.equal(busy.ctx.refused, 0);
  });

  it('owes an error after events that gave the client no id to resume at (progress, an id without data)', () => {
    // An SDK client resumes only at the id of an event with data (eventsource-parser dispatches no
    // other): ended after these, it waited for its answer until its own timeout.
    const progress =
      'data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}\n\n';
    const busy = sealedExchange([['c', 'tools/call', 'none']]);
    assert.equal(run(busy.rewrite, progress), progress + owed('c'));
    assert.equal(busy.ctx.refused, 1);
    const bare = sealedExchange([['d', 'tools/call', 'none']]);
    assert.equal(run(bare.rewrite, `id: p2\n\n${progress}`), `id: p2.sealed\n\n${progress}${owed('d')}`);
    const batch = sealedExchange([
      ['e', 'tools/call', 'none'],
      [5, 'ping', 'none'],
    ]);
    const first = `data: {"jsonrpc":"2.0","id":"${batch.tags[0]}","result":{}}\n\n`;
    assert.equal(run(batch.rewrite, first), 'data: {"jsonrpc":"2.0","id":"e","result":{}}\n\n' + owed(5));
  });
});
