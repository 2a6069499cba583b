/**
 * One POST exchange as the pipeline makes it, for the byte-path differential tests: a judged request
 * tagged by tagRequests, the tag a request forwarded earlier got, and tags no exchange of this
 * principal sent (another gateway's key, another principal).
 */
import { createRequestTagger } from '../../src/integrity/request-tag.ts';
import { tagRequests } from '../../src/integrity/match.ts';
import { PendingTags } from '../../src/integrity/cancels.ts';
import type { JsonRpcId, JsonRpcMessage } from '../../src/jsonrpc/message.ts';

const tagger = createRequestTagger(Buffer.alloc(32, 9), { random: () => Buffer.alloc(6, 2) });
const otherTagger = createRequestTagger(Buffer.alloc(32, 8), { random: () => Buffer.alloc(6, 2) });

/** One exchange as the pipeline makes it: a judged request tagged by tagRequests. */
export function exchange(clientId: JsonRpcId, kind: 'call' | 'list' | 'cancel') {
  const pending = new PendingTags();
  const context = { tagger, bindingId: 'key-a', sessionId: 's-1', pending };
  const message =
    kind === 'cancel'
      ? { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: clientId } }
      : { jsonrpc: '2.0', id: clientId, method: kind === 'call' ? 'tools/call' : 'tools/list' };
  // A cancellation names a request forwarded earlier under its own tag.
  const earlier = tagRequests(
    Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: clientId, method: 'tools/call' })),
    [{ jsonrpc: '2.0', id: clientId, method: 'tools/call' } as JsonRpcMessage],
    undefined,
    context,
  );
  const plans = kind === 'list' ? new Map([[clientId, 'tools' as const]]) : undefined;
  const forwarded = tagRequests(
    Buffer.from(JSON.stringify(message)),
    [message as JsonRpcMessage],
    plans,
    context,
  );
  const [tag] = forwarded.tags.keys();
  const cancelled = [...earlier.tags.keys()][0]!;
  return {
    tags: forwarded.tags,
    // The id a well-behaved upstream answers with (the cancelled one, for a cancellation).
    tag: tag ?? cancelled,
    other: cancelled,
    forged: otherTagger.tag('key-a', clientId, 'none'),
    foreign: tagger.tag('key-b', clientId, 'none'),
  };
}
