/**
 * Which tag the gateway used for a client's request id, so that a client's
 * `notifications/cancelled` names the request the upstream knows (its `requestId` is the tag, never
 * the client's id). Tags are fresh per request (a nonce), so this cannot be recomputed: it is a
 * per-process map, bounded (the oldest entry goes first) and scoped by principal and upstream
 * session. An entry is forgotten when the request's response passes.
 *
 * Trade-off (documented in the README): a cancellation that reaches another replica than the one
 * that forwarded the request, or arrives after MAX_PENDING newer requests, finds no entry; it is then
 * forwarded naming a fresh tag no request has, which the upstream ignores, as the protocol lets a
 * receiver ignore a cancellation of a request it does not know. The request runs to its end; its
 * response is still matched and passed.
 */
import type { JsonRpcId } from '../jsonrpc/message.ts';

/** Requests remembered at most (about 200 bytes each). */
export const MAX_PENDING = 10_000;

export class PendingTags {
  readonly #tags = new Map<string, string>();
  readonly #max: number;

  constructor(max: number = MAX_PENDING) {
    if (!Number.isInteger(max) || max <= 0)
      throw new TypeError('PendingTags: max must be a positive integer');
    this.#max = max;
  }

  get size(): number {
    return this.#tags.size;
  }

  /**
   * The request with this client id, of this principal (`bindingId`) in this upstream session (when
   * it belongs to one), was forwarded under `tag`. Returns the entry's key, for forget().
   */
  remember(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId, tag: string): string {
    const k = keyOf(bindingId, sessionId, clientId);
    this.#tags.delete(k);
    this.#tags.set(k, tag);
    if (this.#tags.size > this.#max) this.#tags.delete(this.#tags.keys().next().value as string);
    return k;
  }

  /** The tag the request with this key was forwarded under, if it is still pending here. */
  tagFor(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId): string | undefined {
    return this.#tags.get(keyOf(bindingId, sessionId, clientId));
  }

  /**
   * The request remembered under `key` (what remember() returned: the same string, so the map does
   * not hash a new one) was answered; forgotten only when `tag` is still the one remembered there.
   */
  forget(key: string, tag: string): void {
    if (this.#tags.get(key) === tag) this.#tags.delete(key);
  }
}

/**
 * One string per (principal, session, client id), unambiguous: the binding id (which may hold any
 * character: an OAuth subject) is prefixed with its length, and a session id has no line break.
 */
function keyOf(bindingId: string, sessionId: string | undefined, clientId: JsonRpcId): string {
  const kind = typeof clientId === 'number' ? '\nn' : '\ns';
  return `${bindingId.length}:${bindingId}${sessionId ?? ''}${kind}${clientId}`;
}
