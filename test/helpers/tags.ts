/**
 * The gateway forwards each request under a tag of its own (src/integrity/request-tag.ts): tests
 * that look for a request in what an upstream received find it by the client id the tag carries.
 */
import { readTagUnverified } from '../../src/integrity/request-tag.ts';
import type { JsonRpcId } from '../../src/jsonrpc/message.ts';

/** The client ids of the requests in a forwarded body (each tag read back; other ids as they are). */
export function forwardedIds(body: string): JsonRpcId[] {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return [];
  }
  const ids: JsonRpcId[] = [];
  for (const m of Array.isArray(value) ? value : [value]) {
    const id = (m as { id?: unknown } | null)?.id;
    if (typeof id === 'string') ids.push(readTagUnverified(id)?.clientId ?? id);
    else if (typeof id === 'number') ids.push(id);
  }
  return ids;
}

/** Whether a forwarded body carries the request the client sent with `id`. */
export function forwards(body: string, id: JsonRpcId): boolean {
  return forwardedIds(body).includes(id);
}
