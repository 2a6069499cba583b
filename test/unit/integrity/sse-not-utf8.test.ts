/**
 * An SSE event whose bytes are not UTF-8. The gateway reads it with U+FFFD in place of each bad
 * sequence (proxy/sse.ts); passed on as it came, the bytes could read as something else to a client
 * whose decoder drops or maps them (`"request\xc0\x80Id"` is `requestId` to a decoder that drops
 * bad bytes, `request\0Id` to modified UTF-8): a cancellation naming another principal's tag that
 * the gateway judged as naming nothing. Such an event reaches the client as the gateway read it,
 * written again (as JSON bodies that are not UTF-8 are refused whole).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { createRequestTagger } from '../../../src/integrity/request-tag.ts';
import { createMatchRewrite, signedIds } from '../../../src/integrity/match.ts';
import { matchEventBytes } from '../../../src/integrity/event-match.ts';
import { compileGrants } from '../../../src/policy/grants.ts';
import { createSseRewriter } from '../../../src/proxy/sse-rewrite.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 9));
const filters = { grants: compileGrants({ allow: ['*'], prompts: ['*'], resources: [] }), tasks: undefined };
const foreign = tagger.tag('key-b', 5, 'none');

function stream(raw: Buffer): Buffer {
  const rewriter = createMatchRewrite(signedIds(tagger, 'key-a'), filters).sse();
  return Buffer.concat([...rewriter.push(raw), ...rewriter.end()]);
}

const bytes = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

describe('an SSE event that is not UTF-8 reaches the client as the gateway read it', () => {
  it('a cancellation whose requestId key is spelled with bytes that are not UTF-8', () => {
    for (const bad of [[0xc0, 0x80], [0xff], [0xed, 0xa0, 0x80]]) {
      const raw = bytes(
        'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"request',
        bad,
        `Id":"${foreign}"}}\n\n`,
      );
      const out = stream(raw);
      assert.ok(isUtf8(out), `bad bytes passed on: ${out.toString('latin1')}`);
      const data = out.toString().split('\n')[1]!.slice('data: '.length);
      const params = (JSON.parse(data) as { params: Record<string, unknown> }).params;
      assert.equal(Object.hasOwn(params, 'requestId'), false);
      assert.match(Object.keys(params)[0]!, /^request\ufffd+Id$/);
    }
  });

  it('the event byte path leaves a block with a bad byte in any field to the parse', () => {
    const raw = bytes('event: m', [0xff], '\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n');
    assert.equal(matchEventBytes(raw, signedIds(tagger, 'key-a')), undefined);
    // Its type, `m\ufffd`, is not `message`: no SDK client dispatches such an event, so it is dropped
    // (proxy/sse-rewrite.ts).
    assert.equal(stream(raw).toString(), '');
    const comment = bytes(
      ': m',
      [0xff],
      '\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n',
    );
    assert.equal(matchEventBytes(comment, signedIds(tagger, 'key-a')), undefined);
    assert.equal(
      stream(comment).toString(),
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n',
    );
  });

  it('UTF-8 blocks still pass as they came, and blocks without data too', () => {
    const plain = bytes(
      'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"t":"é"}}\n\n',
    );
    assert.ok(stream(plain).equals(plain));
    const comment = bytes(': ', [0xff], '\n\n');
    const rewriter = createSseRewriter(() => undefined);
    assert.ok(Buffer.concat([...rewriter.push(comment), ...rewriter.end()]).equals(comment));
  });
});
