/**
 * A message from the upstream that repeats a member the matching reads. JSON.parse keeps the last of
 * a repeated key, other readers the first: when the gateway judges the last and passes the bytes, a
 * first-wins client reads a value nobody judged. Each attack below hides a gateway tag the client
 * may not see (another principal's, or another exchange's) in the first member and a harmless value
 * in the last; written once, the same tag is refused (the control case), so repeated it must be too.
 * The byte paths (small-match.ts, event-match.ts, policy/list-scan.ts) already hand such messages to
 * the parse; this holds the parse itself (restore.ts) to it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import { createMatchRewrite, exchangeIds, signedIds, tagRequests } from '../../../src/integrity/match.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { UNREADABLE } from '../../../src/policy/unreadable.ts';
import { matchEventBytes } from '../../../src/integrity/event-match.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 9));
const filters = { grants: compileGrants({ allow: ['*'], prompts: ['*'], resources: [] }), tasks: undefined };
const SUB = 'io.modelcontextprotocol/subscriptionId';
/** A tag signed for another principal: key-a's client must never see it. */
const foreign = tagger.tag('key-b', 5, 'none');

function streamed(data: string): string {
  const rewriter = createMatchRewrite(signedIds(tagger, 'key-a'), filters).sse();
  const bytes = Buffer.from(`event: message\ndata: ${data}\n\n`);
  return Buffer.concat([...rewriter.push(bytes), ...rewriter.end()]).toString();
}

/** One tools/call exchange of key-a: its tag, and the JSON rewrite of its response. */
function exchange() {
  const message = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } };
  const forwarded = tagRequests(
    Buffer.from(JSON.stringify(message)),
    [message as JsonRpcMessage],
    undefined,
    { tagger, bindingId: 'key-a', sessionId: undefined, pending: undefined },
  );
  return {
    tag: [...forwarded.tags.keys()][0]!,
    rewrite: createMatchRewrite(exchangeIds(forwarded.tags), filters),
  };
}

function answered(rewrite: ReturnType<typeof exchange>['rewrite'], body: string): string | 'refused' {
  try {
    return rewrite.json(Buffer.from(body)).toString();
  } catch {
    return 'refused';
  }
}

const refusedEvent = `event: message\ndata: ${UNREADABLE}\n\n`;

describe('a member the matching reads, repeated: refused, as written once', () => {
  it('control: a cancellation or subscription naming a foreign tag once is refused', () => {
    assert.equal(
      streamed(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${foreign}"}}`),
      refusedEvent,
    );
    assert.equal(
      streamed(`{"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{"${SUB}":"${foreign}"}}}`),
      refusedEvent,
    );
  });

  it('a cancellation whose requestId repeats, the foreign tag first', () => {
    const got = streamed(
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${foreign}","requestId":"x"}}`,
    );
    assert.equal(got, refusedEvent);
  });

  it('a notification whose params repeat, the foreign tag in the first', () => {
    const got = streamed(
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${foreign}"},"params":{}}`,
    );
    assert.equal(got, refusedEvent);
    const last = streamed(
      `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"${foreign}"},"params":7}`,
    );
    assert.equal(last, refusedEvent);
  });

  it('a subscription notification whose _meta or subscription id repeats, the foreign tag first', () => {
    assert.equal(
      streamed(
        `{"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{"${SUB}":"${foreign}"},"_meta":{}}}`,
      ),
      refusedEvent,
    );
    assert.equal(
      streamed(
        `{"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{"${SUB}":"${foreign}","${SUB}":7}}}`,
      ),
      refusedEvent,
    );
    // Spelled with an escape, the repeat is the same key to every reader.
    assert.equal(
      streamed(
        `{"jsonrpc":"2.0","method":"notifications/x","params":{"_m\\u0065ta":{"${SUB}":"${foreign}"},"_meta":{}}}`,
      ),
      refusedEvent,
    );
  });

  it('an error naming no request whose id repeats, a gateway tag first', () => {
    const { tag, rewrite } = exchange();
    assert.equal(
      answered(rewrite, `{"jsonrpc":"2.0","id":"${tag}","id":null,"error":{"code":1,"message":"m"}}`),
      'refused',
    );
    assert.equal(
      streamed(`{"jsonrpc":"2.0","id":"${foreign}","id":null,"error":{"code":1,"message":"m"}}`),
      refusedEvent,
    );
  });

  it('a response whose result or result._meta repeats, a foreign subscription id first', () => {
    const a = exchange();
    assert.equal(
      answered(
        a.rewrite,
        `{"jsonrpc":"2.0","id":"${a.tag}","result":{"_meta":{"${SUB}":"${foreign}"}},"result":{}}`,
      ),
      'refused',
    );
    const b = exchange();
    assert.equal(
      answered(
        b.rewrite,
        `{"jsonrpc":"2.0","id":"${b.tag}","result":{"_meta":{"${SUB}":"${foreign}"},"_meta":{}}}`,
      ),
      'refused',
    );
  });

  it('still passes what repeats nothing the matching reads', () => {
    const plain = `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1,"progress":2}}`;
    assert.equal(streamed(plain), `event: message\ndata: ${plain}\n\n`);
    const { tag, rewrite } = exchange();
    assert.equal(
      answered(
        rewrite,
        `{"jsonrpc":"2.0","id":"${tag}","result":{"content":[],"content":[],"_meta":{"a":1}}}`,
      ),
      `{"jsonrpc":"2.0","id":1,"result":{"content":[],"content":[],"_meta":{"a":1}}}`,
    );
  });

  it('the event byte path hands a repeated params to the parse, which judges it as above', () => {
    const data = `{"jsonrpc":"2.0","method":"notifications/x","params":{"note":"_meta"},"params":{}}`;
    const raw = Buffer.from(`event: message\ndata: ${data}\n\n`);
    assert.equal(matchEventBytes(raw, signedIds(tagger, 'key-a')), undefined);
    assert.equal(streamed(data), refusedEvent);
  });

  it('a large response (past the one-pass scan, list-match.ts) whose result._meta repeats', () => {
    const text = 'x'.repeat(5000);
    const a = exchange();
    const body = `{"jsonrpc":"2.0","id":"${a.tag}","result":{"_meta":{"${SUB}":"${foreign}"},"_meta":{},"content":[{"type":"text","text":"${text}"}]}}`;
    assert.equal(answered(a.rewrite, body), 'refused');
    const b = exchange();
    const rewriter = b.rewrite.sse();
    const out = Buffer.concat([
      ...rewriter.push(Buffer.from(`data: ${body.replace(a.tag, b.tag)}\n\n`)),
      ...rewriter.end(),
    ]);
    // The refused response answered nothing: the stream's end owes the request its error.
    assert.ok(
      out.toString().startsWith(`data: ${UNREADABLE}\n\ndata: {"jsonrpc":"2.0","id":1,"error"`),
      out.toString(),
    );
  });
});
