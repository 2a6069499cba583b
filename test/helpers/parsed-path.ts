/**
 * The reference the byte paths of response matching are fuzzed against: the parsed path of
 * src/integrity/match.ts written out plainly (strict UTF-8 decode, JSON.parse, restoreIds, then the
 * plan's list filter). A body it cannot read or answer throws ERR_UPSTREAM_PROTOCOL, as match.ts does.
 * And an SSE response's: each event framed, parsed and matched, without event-match.ts's byte path.
 */
import { GatewayError, RPC } from '../../src/jsonrpc/errors.ts';
import { restoreIds } from '../../src/integrity/restore.ts';
import { matchEventData } from '../../src/integrity/match.ts';
import type { Filters, ResponseIds } from '../../src/integrity/match.ts';
import { createSseRewriter } from '../../src/proxy/sse-rewrite.ts';
import { filterJsonResponseBody } from '../../src/policy/filter-list.ts';
import type { Grants } from '../../src/policy/grants.ts';

const strict = new TextDecoder('utf-8', { fatal: true });

export function parsedJsonPath(bytes: Buffer, ids: ResponseIds, grants: Grants): Buffer {
  let text: string;
  let value: unknown;
  try {
    text = strict.decode(bytes);
    value = JSON.parse(text);
  } catch (cause) {
    throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { cause });
  }
  const restored = restoreIds(text, value, ids);
  if (restored === undefined) throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'unanswerable' });
  const out = Buffer.from(restored.text);
  return restored.plans === undefined ? out : filterJsonResponseBody(out, restored.plans, grants);
}

/**
 * The parsed path of an SSE response (match.ts without its byte path): every block framed and
 * parsed (proxy/sse.ts), its data given to matchEventData, the block written again when it changed;
 * a stream that ends with no event id for the client to resume at owes an error to each request
 * left unanswered (unless `owing` is false: the blocks alone, as one block of a stream is judged).
 */
export function parsedSsePath(
  chunks: readonly Buffer[],
  ids: ResponseIds,
  filters: Filters,
  owing = true,
): Buffer {
  const rewriter = createSseRewriter((data) => matchEventData(data, ids, filters), {
    onEnd: (resumable) =>
      resumable || !owing ? [] : (ids.unanswered?.() ?? []).map((u) => owed(u.clientId)),
  });
  const out: Buffer[] = [];
  for (const chunk of chunks) out.push(...rewriter.push(chunk));
  out.push(...rewriter.end());
  return Buffer.concat(out);
}

function owed(id: unknown): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    error: { code: RPC.UPSTREAM, message: 'upstream ended the stream without an answer' },
  });
}
